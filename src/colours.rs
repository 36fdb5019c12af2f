//! The colour of each expression class, shared by the annotated video's probability
//! bars and the report's charts, so that a class looks the same everywhere. Classes
//! beyond the palette's length wrap around.

/// RGB colours, in class order (FER+'s: neutral, happiness, surprise, sadness, anger,
/// disgust, fear, contempt): categorical, distinguishable on white and on video.
const CLASS_COLOURS: [[u8; 3]; 10] = [
    [127, 127, 127],
    [255, 190, 0],
    [23, 190, 207],
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [188, 189, 34],
];

/// The RGB colour of class `index`.
pub fn class_colour(index: usize) -> [u8; 3] {
    CLASS_COLOURS[index % CLASS_COLOURS.len()]
}

/// The colour of class `index` as CSS (`#rrggbb`).
pub fn class_colour_css(index: usize) -> String {
    let [r, g, b] = class_colour(index);
    format!("#{r:02x}{g:02x}{b:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_ferplus_classes_have_eight_colours() {
        let colours: std::collections::HashSet<[u8; 3]> = (0..8).map(class_colour).collect();
        assert_eq!(colours.len(), 8);
        assert_eq!(class_colour_css(1), "#ffbe00");
        assert_eq!(class_colour(10), class_colour(0));
    }
}
