//! Classification metrics under the majority protocol: accuracy, per-class
//! accuracy (recall) and the confusion matrix.

use std::path::Path;

use anyhow::{Context, Result};

/// Which valid-split figure chooses the best epoch of a run (`--select`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Share of images classified correctly (dominated by the large classes).
    #[default]
    Accuracy,
    /// Mean of the per-class accuracies (every class counts the same).
    MeanClass,
    /// The mean of accuracy and mean class accuracy.
    Average,
}

impl Selection {
    pub fn score(self, confusion: &Confusion) -> f64 {
        match self {
            Selection::Accuracy => confusion.accuracy(),
            Selection::MeanClass => confusion.mean_class_accuracy(),
            Selection::Average => 0.5 * (confusion.accuracy() + confusion.mean_class_accuracy()),
        }
    }
}

/// Counts of (true class, predicted class).
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    pub classes: Vec<String>,
    /// `counts[true][predicted]`
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    pub fn new(classes: Vec<String>) -> Self {
        let n = classes.len();
        Self {
            classes,
            counts: vec![vec![0; n]; n],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Share of samples whose prediction is their class.
    pub fn accuracy(&self) -> f64 {
        let correct: usize = (0..self.classes.len()).map(|i| self.counts[i][i]).sum();
        correct as f64 / self.total().max(1) as f64
    }

    /// Per true class: share predicted correctly (`None` for a class with no sample).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: usize = row.iter().sum();
                (n > 0).then(|| row[i] as f64 / n as f64)
            })
            .collect()
    }

    /// Mean of the per-class accuracies over classes that have samples.
    pub fn mean_class_accuracy(&self) -> f64 {
        let v: Vec<f64> = self.per_class_accuracy().into_iter().flatten().collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }

    /// A text table: per-class accuracy, then the matrix (rows = truth).
    pub fn report(&self) -> String {
        let w = self
            .classes
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(5)
            .max(9);
        let mut s = format!(
            "accuracy {:.2} % ({} of {}), mean class accuracy {:.2} %\n\n",
            self.accuracy() * 100.0,
            (0..self.classes.len())
                .map(|i| self.counts[i][i])
                .sum::<usize>(),
            self.total(),
            self.mean_class_accuracy() * 100.0
        );
        s += &format!("{:w$}  {:>8}  {:>6}\n", "class", "accuracy", "count");
        for (i, acc) in self.per_class_accuracy().iter().enumerate() {
            let n: usize = self.counts[i].iter().sum();
            let a = acc.map_or("-".to_string(), |a| format!("{:.2} %", a * 100.0));
            s += &format!("{:w$}  {:>8}  {:>6}\n", self.classes[i], a, n);
        }
        s += &format!("\nconfusion (rows: true, columns: predicted)\n{:w$}", "");
        for c in &self.classes {
            s += &format!(" {:>6}", c.chars().take(6).collect::<String>());
        }
        s += "\n";
        for (i, row) in self.counts.iter().enumerate() {
            s += &format!("{:w$}", self.classes[i]);
            for v in row {
                s += &format!(" {v:>6}");
            }
            s += "\n";
        }
        s
    }

    /// `true\predicted` CSV of counts, plus a per-class accuracy CSV.
    pub fn write_csv(&self, matrix: &Path, per_class: &Path) -> Result<()> {
        let mut w = csv::Writer::from_path(matrix)
            .with_context(|| format!("cannot write {}", matrix.display()))?;
        let mut header = vec!["true\\predicted".to_string()];
        header.extend(self.classes.iter().cloned());
        w.write_record(&header)?;
        for (i, row) in self.counts.iter().enumerate() {
            let mut rec = vec![self.classes[i].clone()];
            rec.extend(row.iter().map(|v| v.to_string()));
            w.write_record(&rec)?;
        }
        w.flush()?;
        let mut w = csv::Writer::from_path(per_class)
            .with_context(|| format!("cannot write {}", per_class.display()))?;
        w.write_record(["class", "count", "correct", "accuracy"])?;
        for (i, acc) in self.per_class_accuracy().iter().enumerate() {
            let n: usize = self.counts[i].iter().sum();
            w.write_record([
                self.classes[i].clone(),
                n.to_string(),
                self.counts[i][i].to_string(),
                acc.map_or(String::new(), |a| format!("{a:.6}")),
            ])?;
        }
        w.write_record([
            "ALL".to_string(),
            self.total().to_string(),
            (0..self.classes.len())
                .map(|i| self.counts[i][i])
                .sum::<usize>()
                .to_string(),
            format!("{:.6}", self.accuracy()),
        ])?;
        w.flush()?;
        Ok(())
    }
}

/// Index of the largest value (the first on a tie).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv { (i, x) } else { (bi, bv) }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_per_class_accuracy_from_counts() {
        let mut c = Confusion::new(vec!["a".into(), "b".into(), "c".into()]);
        for (t, p) in [(0, 0), (0, 0), (0, 1), (1, 1), (2, 0)] {
            c.add(t, p);
        }
        assert!((c.accuracy() - 0.6).abs() < 1e-12);
        assert_eq!(
            c.per_class_accuracy(),
            vec![Some(2.0 / 3.0), Some(1.0), Some(0.0)]
        );
        assert!((c.mean_class_accuracy() - 5.0 / 9.0).abs() < 1e-12);
        assert!(c.report().contains("60.00 %"));
        assert_eq!(Selection::Accuracy.score(&c), c.accuracy());
        assert_eq!(Selection::MeanClass.score(&c), c.mean_class_accuracy());
        assert!((Selection::Average.score(&c) - (0.6 + 5.0 / 9.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.5, 0.5, 0.2]), 1);
    }
}
