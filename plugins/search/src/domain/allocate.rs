//! Splitting a captured or refunded amount between the sellers of an order,
//! in proportion to what their lines cost, in whole minor units that sum
//! exactly to the amount.
use std::collections::BTreeMap;

/// One SKU of an order (its lines summed), with the seller offering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub seller_id: String,
    pub quantity: i64,
    pub line_total_minor: i64,
}

/// A part of a payment: what one of the seller's SKUs gets, and its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub seller_id: String,
    pub sku: String,
    pub amount_minor: i64,
    pub units: i64,
}

/// Splits `amount` (≥ 0) in proportion to `weights` (each ≥ 0) by the
/// largest-remainder method: each part is the floor of its exact share, and
/// the units left over go one each to the largest remainders (ties to the
/// earlier weight). The parts sum exactly to `amount`. When every weight is
/// 0 the amount is split equally instead; with no weights there are no parts.
pub fn largest_remainder(amount: i64, weights: &[i64]) -> Vec<i64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let total: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    let (weights, total): (Vec<i128>, i128) = if total == 0 {
        (vec![1; weights.len()], weights.len() as i128)
    } else {
        (weights.iter().map(|w| i128::from(*w)).collect(), total)
    };
    let amount = i128::from(amount);
    let mut parts: Vec<i128> = weights.iter().map(|w| amount * w / total).collect();
    let mut left = amount - parts.iter().sum::<i128>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Largest remainder first; a stable sort keeps ties in their given order.
    order.sort_by_key(|&i| std::cmp::Reverse(amount * weights[i] % total));
    for i in order {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    // Each part lies between 0 and `amount`, so it fits back in an i64.
    parts.into_iter().map(|p| p as i64).collect()
}

/// Splits `amount` between the sellers of `lines` in proportion to their
/// lines' totals, then each seller's part between its SKUs the same way:
/// both steps by [`largest_remainder`], so the sellers' parts sum exactly to
/// `amount` and each seller's SKUs exactly to its part. Sellers and SKUs are
/// taken in name order, which makes the rounding deterministic.
pub fn allocate(amount: i64, lines: &[Line]) -> Vec<Share> {
    let mut by_seller: BTreeMap<&str, Vec<&Line>> = BTreeMap::new();
    for line in lines {
        by_seller.entry(&line.seller_id).or_default().push(line);
    }
    let seller_weights: Vec<i64> = by_seller
        .values()
        .map(|ls| ls.iter().map(|l| l.line_total_minor).sum())
        .collect();
    let seller_parts = largest_remainder(amount, &seller_weights);
    let mut shares = Vec::new();
    for ((seller_id, mut seller_lines), part) in by_seller.into_iter().zip(seller_parts) {
        seller_lines.sort_by(|a, b| a.sku.cmp(&b.sku));
        let weights: Vec<i64> = seller_lines.iter().map(|l| l.line_total_minor).collect();
        for (line, amount_minor) in seller_lines.iter().zip(largest_remainder(part, &weights)) {
            shares.push(Share {
                seller_id: seller_id.to_owned(),
                sku: line.sku.clone(),
                amount_minor,
                units: line.quantity,
            });
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, seller: &str, quantity: i64, total: i64) -> Line {
        Line {
            sku: sku.into(),
            seller_id: seller.into(),
            quantity,
            line_total_minor: total,
        }
    }

    fn seller_totals(shares: &[Share]) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for s in shares {
            *out.entry(s.seller_id.clone()).or_insert(0) += s.amount_minor;
        }
        out
    }

    #[test]
    fn exact_shares_need_no_rounding() {
        assert_eq!(largest_remainder(1000, &[1, 3]), [250, 750]);
        assert_eq!(largest_remainder(0, &[5, 5]), [0, 0]);
        assert_eq!(largest_remainder(7, &[1]), [7]);
    }

    #[test]
    fn leftover_units_go_to_the_largest_remainders() {
        // 100 / 3 = 33.33 each: one leftover unit, to the first (tie).
        assert_eq!(largest_remainder(100, &[1, 1, 1]), [34, 33, 33]);
        // 10 × (1/6, 2/6, 3/6) = 1.67, 3.33, 5: the .67 wins the unit.
        assert_eq!(largest_remainder(10, &[1, 2, 3]), [2, 3, 5]);
        // 5 × (1/4, 1/4, 2/4) = 1.25, 1.25, 2.5: the .5 wins the unit.
        assert_eq!(largest_remainder(5, &[1, 1, 2]), [1, 1, 3]);
        // 7 × (1/4, 1/4, 2/4) = 1.75, 1.75, 3.5: two units, to the .75s.
        assert_eq!(largest_remainder(7, &[1, 1, 2]), [2, 2, 3]);
    }

    #[test]
    fn parts_always_sum_to_the_amount() {
        let weights = [
            vec![1999, 1, 7, 0, 123_456],
            vec![3, 3, 3, 3, 3, 3, 3],
            vec![1_000_000_000_000, 1, 1],
            vec![0, 0, 5],
        ];
        for w in &weights {
            for amount in [0, 1, 2, 99, 1001, 123_457, 1_000_000_000_000] {
                let parts = largest_remainder(amount, w);
                assert_eq!(parts.iter().sum::<i64>(), amount, "{amount} over {w:?}");
                assert!(parts.iter().all(|p| *p >= 0), "{parts:?}");
                // Never more than one unit away from the exact share.
                let total: i128 = w.iter().map(|x| i128::from(*x)).sum();
                for (p, x) in parts.iter().zip(w) {
                    let exact = i128::from(amount) * i128::from(*x);
                    let diff = i128::from(*p) * total - exact;
                    assert!(diff.abs() < total, "{p} vs {exact}/{total}");
                }
            }
        }
    }

    #[test]
    fn zero_weights_split_equally_and_no_weights_split_nothing() {
        assert_eq!(largest_remainder(10, &[0, 0, 0]), [4, 3, 3]);
        assert_eq!(largest_remainder(10, &[]), Vec::<i64>::new());
    }

    #[test]
    fn a_payment_is_split_between_sellers_by_their_lines_totals() {
        let lines = [
            line("MUG", "acme", 2, 2500),
            line("TEE", "bolt", 1, 1999),
            line("CAP", "acme", 1, 1000),
        ];
        let shares = allocate(5499, &lines);
        let totals = seller_totals(&shares);
        assert_eq!(totals["acme"], 3500);
        assert_eq!(totals["bolt"], 1999);
        // Within acme, by SKU name: CAP then MUG.
        assert_eq!(
            shares,
            [
                Share {
                    seller_id: "acme".into(),
                    sku: "CAP".into(),
                    amount_minor: 1000,
                    units: 1
                },
                Share {
                    seller_id: "acme".into(),
                    sku: "MUG".into(),
                    amount_minor: 2500,
                    units: 2
                },
                Share {
                    seller_id: "bolt".into(),
                    sku: "TEE".into(),
                    amount_minor: 1999,
                    units: 1
                },
            ]
        );
    }

    #[test]
    fn a_discounted_or_partial_amount_is_rounded_to_whole_units_that_add_up() {
        let lines = [
            line("A", "s1", 1, 1000),
            line("B", "s2", 1, 1000),
            line("C", "s3", 1, 1000),
        ];
        // A refund of 1000 over three equal sellers: 334 + 333 + 333.
        let shares = allocate(1000, &lines);
        let totals = seller_totals(&shares);
        assert_eq!((totals["s1"], totals["s2"], totals["s3"]), (334, 333, 333));
        assert_eq!(shares.iter().map(|s| s.amount_minor).sum::<i64>(), 1000);
        // The seller level is split first, then each seller's SKUs.
        let lines = [
            line("A", "s1", 1, 1),
            line("B", "s1", 1, 1),
            line("C", "s2", 1, 1),
        ];
        let shares = allocate(10, &lines);
        let totals = seller_totals(&shares);
        assert_eq!((totals["s1"], totals["s2"]), (7, 3));
        assert_eq!(
            shares.iter().map(|s| s.amount_minor).collect::<Vec<_>>(),
            [4, 3, 3]
        );
    }

    #[test]
    fn an_order_of_one_seller_gets_everything() {
        let shares = allocate(777, &[line("A", "solo", 3, 100), line("B", "solo", 1, 0)]);
        assert_eq!(seller_totals(&shares)["solo"], 777);
        assert_eq!(shares.iter().map(|s| s.units).sum::<i64>(), 4);
        assert_eq!(shares[1].amount_minor, 0);
    }
}
