//! Groups a request's positions by stripe with one counting sort (no per-row allocation).

/// Positions of a request's ids, ordered by stripe.
#[derive(Debug)]
pub struct StripeGroups {
    order: Vec<u32>,
    starts: Vec<u32>,
}

impl StripeGroups {
    /// Groups positions `0..stripe_of.len()` by their stripe (`< stripes`).
    pub fn new(stripe_of: &[u16], stripes: usize) -> Self {
        let mut starts = vec![0u32; stripes + 1];
        for &s in stripe_of {
            starts[s as usize + 1] += 1;
        }
        for i in 0..stripes {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; stripe_of.len()];
        for (pos, &s) in stripe_of.iter().enumerate() {
            let slot = &mut next[s as usize];
            order[*slot as usize] = pos as u32;
            *slot += 1;
        }
        Self { order, starts }
    }

    /// Non-empty groups as (stripe, positions).
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[u32])> + '_ {
        self.starts.windows(2).enumerate().filter_map(|(s, w)| {
            let (a, b) = (w[0] as usize, w[1] as usize);
            (b > a).then(|| (s, &self.order[a..b]))
        })
    }

    /// Positions of stripe `s` (empty when the request has none there).
    pub fn positions(&self, s: usize) -> &[u32] {
        &self.order[self.starts[s] as usize..self.starts[s + 1] as usize]
    }

    /// Size of the largest group.
    pub fn max_group(&self) -> usize {
        self.starts
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_request_order_within_a_stripe() {
        let g = StripeGroups::new(&[2, 0, 2, 1, 0], 4);
        let groups: Vec<_> = g.iter().map(|(s, p)| (s, p.to_vec())).collect();
        assert_eq!(groups, vec![(0, vec![1, 4]), (1, vec![3]), (2, vec![0, 2])]);
        assert_eq!(g.max_group(), 2);
    }
}
