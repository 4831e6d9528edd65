//! A small bounded list of the best (lowest-score) candidates.

/// Keeps the `cap` lowest `(score, index)` pairs seen, sorted ascending (ties by index).
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    cap: usize,
    items: Vec<(f32, usize)>,
}

impl TopK {
    pub(crate) fn new(cap: usize) -> Self {
        TopK {
            cap,
            items: Vec::with_capacity(cap + 1),
        }
    }

    /// Score a candidate must beat to enter (infinite while not full).
    #[inline]
    pub(crate) fn worst(&self) -> f32 {
        if self.items.len() < self.cap {
            f32::INFINITY
        } else {
            self.items[self.items.len() - 1].0
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, score: f32, idx: usize) {
        if self.cap == 0 {
            return;
        }
        let full = self.items.len() >= self.cap;
        if full {
            let last = self.items[self.items.len() - 1];
            if (score, idx) >= last {
                return;
            }
        }
        let pos = self.items.partition_point(|&(s, i)| (s, i) < (score, idx));
        self.items.insert(pos, (score, idx));
        if self.items.len() > self.cap {
            self.items.pop();
        }
    }

    /// The best candidate (the list must not be empty).
    pub(crate) fn first(&self) -> (f32, usize) {
        self.items[0]
    }

    pub(crate) fn merge(&mut self, other: &TopK) {
        for &(s, i) in &other.items {
            self.push(s, i);
        }
    }

    pub(crate) fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.items.iter().map(|&(_, i)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lowest_sorted() {
        let mut t = TopK::new(3);
        for (s, i) in [(5.0, 0), (1.0, 1), (3.0, 2), (0.5, 3), (3.0, 4), (9.0, 5)] {
            t.push(s, i);
        }
        assert_eq!(t.indices().collect::<Vec<_>>(), vec![3, 1, 2]);
        assert_eq!(t.worst(), 3.0);
        let mut u = TopK::new(3);
        u.push(0.1, 7);
        u.merge(&t);
        assert_eq!(u.indices().collect::<Vec<_>>(), vec![7, 3, 1]);
    }
}
