//! The capacity search (pure): raise the open-model rate step by step until
//! a step breaks a threshold (or the maximum rate passes), then bisect
//! between the highest rate that passed and the lowest that broke until they
//! are within `RESOLUTION` of each other, in at most `max_steps` steps.

/// Each raise multiplies the rate by this.
pub const GROWTH: f64 = 2.0;
/// Bisection stops once the gap is at most this fraction of the broken rate.
pub const RESOLUTION: f64 = 0.1;

#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    start: f64,
    max: f64,
    max_steps: usize,
    steps: usize,
    /// Highest rate that met every threshold.
    passed: Option<f64>,
    /// Lowest rate that broke one.
    broke: Option<f64>,
}

impl Search {
    pub fn new(start: f64, max: f64, max_steps: usize) -> Search {
        Search {
            start,
            max: max.max(start),
            max_steps: max_steps.max(1),
            steps: 0,
            passed: None,
            broke: None,
        }
    }

    /// The rate of the first step.
    pub fn first(&self) -> f64 {
        self.start
    }

    /// Records a step's outcome; returns the next step's rate, or `None`
    /// when the search is over.
    pub fn next(&mut self, rate: f64, passed: bool) -> Option<f64> {
        self.steps += 1;
        if passed {
            self.passed = Some(self.passed.map_or(rate, |p| p.max(rate)));
        } else {
            self.broke = Some(self.broke.map_or(rate, |b| b.min(rate)));
        }
        if self.steps >= self.max_steps {
            return None;
        }
        match (self.passed, self.broke) {
            // Still raising.
            (Some(p), None) => (p < self.max).then(|| (p * GROWTH).min(self.max)),
            (passed, Some(broke)) => {
                let low = passed.unwrap_or(0.0);
                (broke - low > RESOLUTION * broke).then(|| (low + broke) / 2.0)
            }
            (None, None) => None,
        }
    }

    pub fn passed(&self) -> Option<f64> {
        self.passed
    }

    pub fn broke(&self) -> Option<f64> {
        self.broke
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a target that meets the thresholds up to `limit`.
    fn check(
        start: f64,
        max: f64,
        max_steps: usize,
        limit: f64,
        expected: &[f64],
        best: Option<f64>,
    ) {
        let mut s = Search::new(start, max, max_steps);
        let mut rates = vec![s.first()];
        while let Some(next) = s.next(*rates.last().unwrap(), *rates.last().unwrap() <= limit) {
            rates.push(next);
        }
        assert_eq!(rates, expected, "start {start} max {max} limit {limit}");
        assert_eq!(s.passed(), best);
    }

    #[test]
    fn table() {
        // Raise 5 → 10 → 20 → 40 (breaks), bisect 30 (breaks), 25 (passes), 27.5.
        check(
            5.0,
            1000.0,
            12,
            26.0,
            &[5.0, 10.0, 20.0, 40.0, 30.0, 25.0, 27.5],
            Some(25.0),
        );
        // Everything passes: stop at the maximum.
        check(5.0, 30.0, 12, 1e9, &[5.0, 10.0, 20.0, 30.0], Some(30.0));
        // The start breaks already: bisect towards 0.
        check(8.0, 100.0, 4, 2.5, &[8.0, 4.0, 2.0, 3.0], Some(2.0));
        // The step budget ends the search.
        check(1.0, 1000.0, 3, 1e9, &[1.0, 2.0, 4.0], Some(4.0));
        check(1.0, 1000.0, 1, 0.0, &[1.0], None);
    }
}
