//! PNG pictures a person looks at: the MAE reconstruction grid and the
//! confusion matrix, drawn with the `image` crate and an 8×8 bitmap font.

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

/// Lays out `rows` of equally sized tiles with a `gap`-pixel white border,
/// each tile scaled up by the integer `zoom` (nearest neighbour).
pub fn tile_grid(rows: &[Vec<RgbImage>], zoom: u32, gap: u32) -> RgbImage {
    let (tw, th) = rows
        .first()
        .and_then(|r| r.first())
        .map_or((1, 1), |t| (t.width() * zoom, t.height() * zoom));
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut out = RgbImage::from_pixel(
        gap + cols * (tw + gap),
        gap + rows.len() as u32 * (th + gap),
        Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            let (x0, y0) = (gap + c as u32 * (tw + gap), gap + r as u32 * (th + gap));
            for y in 0..th {
                for x in 0..tw {
                    let p = *tile.get_pixel(
                        (x / zoom).min(tile.width() - 1),
                        (y / zoom).min(tile.height() - 1),
                    );
                    out.put_pixel(x0 + x, y0 + y, p);
                }
            }
        }
    }
    out
}

/// Writes `text` with the 8×8 font at `(x, y)` (top-left), `scale` pixels per
/// font pixel; characters outside the image are clipped.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, color: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else {
            continue;
        };
        for (gy, row) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if row & (1 << gx) == 0 {
                    continue;
                }
                for sy in 0..scale {
                    for sx in 0..scale {
                        let px = x + (i as i64 * 8 + gx) * scale as i64 + sx as i64;
                        let py = y + gy as i64 * scale as i64 + sy as i64;
                        if px >= 0
                            && py >= 0
                            && (px as u32) < img.width()
                            && (py as u32) < img.height()
                        {
                            img.put_pixel(px as u32, py as u32, color);
                        }
                    }
                }
            }
        }
    }
}

/// The confusion matrix (`counts[true][predicted]`) as a picture: rows are
/// true classes, columns predictions; each cell shows the share of its row in
/// percent, shaded from white (0 %) to dark blue (100 %).
pub fn confusion_png(counts: &[Vec<usize>], classes: &[String]) -> RgbImage {
    let n = classes.len() as u32;
    let cell = 44u32;
    let label_w = 8 * classes.iter().map(|c| c.chars().count()).max().unwrap_or(1) as u32 + 16;
    let top = 40u32;
    let mut img = RgbImage::from_pixel(
        label_w + n * cell + 8,
        top + n * cell + 24,
        Rgb([255, 255, 255]),
    );
    let black = Rgb([0, 0, 0]);
    draw_text(&mut img, label_w as i64, 4, "predicted ->", 1, black);
    for (j, name) in classes.iter().enumerate() {
        let short: String = name.chars().take(5).collect();
        draw_text(
            &mut img,
            (label_w + j as u32 * cell + 2) as i64,
            22,
            &short,
            1,
            black,
        );
    }
    for (i, name) in classes.iter().enumerate() {
        let total: usize = counts[i].iter().sum();
        draw_text(
            &mut img,
            4,
            (top + i as u32 * cell + cell / 2 - 4) as i64,
            name,
            1,
            black,
        );
        for j in 0..classes.len() {
            let share = if total > 0 {
                counts[i][j] as f32 / total as f32
            } else {
                0.0
            };
            let shade = |white: f32, full: f32| (white + (full - white) * share) as u8;
            let color = Rgb([shade(255.0, 8.0), shade(255.0, 48.0), shade(255.0, 107.0)]);
            let (x0, y0) = (label_w + j as u32 * cell, top + i as u32 * cell);
            for y in y0..y0 + cell - 1 {
                for x in x0..x0 + cell - 1 {
                    img.put_pixel(x, y, color);
                }
            }
            let text = format!("{:.0}", share * 100.0);
            let ink = if share > 0.5 {
                Rgb([255, 255, 255])
            } else {
                black
            };
            let tx = x0 as i64 + (cell as i64 - 8 * text.len() as i64) / 2;
            draw_text(&mut img, tx, (y0 + cell / 2 - 4) as i64, &text, 1, ink);
        }
    }
    draw_text(
        &mut img,
        4,
        (top + n * cell + 8) as i64,
        "rows: true class, cells: % of row",
        1,
        black,
    );
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_tiles_with_gaps_and_zoom() {
        let red = RgbImage::from_pixel(2, 2, Rgb([255, 0, 0]));
        let blue = RgbImage::from_pixel(2, 2, Rgb([0, 0, 255]));
        let g = tile_grid(&[vec![red, blue]], 2, 1);
        assert_eq!(g.dimensions(), (1 + 2 * 5, 1 + 5));
        assert_eq!(*g.get_pixel(1, 1), Rgb([255, 0, 0]));
        assert_eq!(*g.get_pixel(4, 4), Rgb([255, 0, 0]));
        assert_eq!(*g.get_pixel(5, 1), Rgb([255, 255, 255]), "gap");
        assert_eq!(*g.get_pixel(6, 1), Rgb([0, 0, 255]));
    }

    #[test]
    fn confusion_picture_shades_the_diagonal_of_a_perfect_classifier() {
        let classes = vec!["a".to_string(), "b".to_string()];
        let img = confusion_png(&[vec![5, 0], vec![0, 5]], &classes);
        let label_w = 8 + 16;
        // Cell (0,0) corner is dark, cell (0,1) corner white.
        assert_eq!(*img.get_pixel(label_w + 1, 41), Rgb([8, 48, 107]));
        assert_eq!(*img.get_pixel(label_w + 44 + 1, 41), Rgb([255, 255, 255]));
    }
}
