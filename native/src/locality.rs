//! Where a backend runs, seen from this proxy, and how much the proxy prefers it. Pure;
//! mirrors the grpcio plane's `placed_rank` (`gproxy_mp/worker/balancer.py`).
//!
//! The supervisor places each endpoint (`gproxy_mp/supervisor/resolvers/locality.py`: the
//! `--locality` mode, this proxy's node and zone, the Service's `trafficDistribution`, the
//! EndpointSlice hints) and the bus carries the result: a locality (the `locality` label of
//! the call counters) and a ring (0 preferred, then 1, 2). The engine only ranks by it: health
//! first, then ring, so a READY backend of the preferred ring takes the call, then a READY one
//! of the next ring (spill-over), and only then backends not known to be ready. A call is
//! never failed while another ring has a backend that could take it: rings order the pick,
//! they never remove a backend from it.

use crate::balance::{CHECK_FAILED, FAILING};

/// The `locality` label values, indexed by what `Placement::locality` holds.
pub const LOCALITIES: [&str; 4] = ["none", "same_node", "same_zone", "other"];
/// Locality off, or not known for this target.
pub const NONE: u8 = 0;
/// Rings a rank tells apart (same node, same zone, the rest); higher ones count as the last.
pub const RINGS: u8 = 3;

/// A backend's place: an index into `LOCALITIES`, and its ring.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub locality: u8,
    pub ring: u8,
}

impl Placement {
    /// From the bus's names and ring; None for a locality name the engine does not know.
    pub fn from_parts(locality: &str, ring: u32) -> Option<Placement> {
        let locality = LOCALITIES.iter().position(|name| *name == locality)?;
        Some(Placement {
            locality: u8::try_from(locality).ok()?,
            ring: u8::try_from(ring.min(u32::from(RINGS - 1))).ok()?,
        })
    }
}

/// The rank pickers compare: health (`balance::READY`..`FAILING`, plus `CHECK_FAILED` while
/// its health check fails) first, then ring; 0 is READY in ring 0, so the pickers' READY fast
/// paths take only the preferred ring's backends.
pub fn placed_rank(health: u8, ring: u8) -> u8 {
    health.min(FAILING + CHECK_FAILED) * RINGS + ring.min(RINGS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::{READY, UNKNOWN, pick, pick_least};

    #[test]
    fn ranks_order_health_first_then_ring_so_calls_spill_over() {
        assert_eq!(placed_rank(READY, 0), READY);
        let mut order = [
            (FAILING, 0),
            (READY, 1),
            (UNKNOWN, 0),
            (READY, 0),
            (READY, 2),
        ];
        order.sort_by_key(|&(health, ring)| placed_rank(health, ring));
        assert_eq!(
            order,
            [
                (READY, 0),
                (READY, 1),
                (READY, 2),
                (UNKNOWN, 0),
                (FAILING, 0)
            ]
        );
        assert_eq!(placed_rank(READY, 7), placed_rank(READY, 2));
    }

    #[test]
    fn a_failed_health_check_ranks_after_every_backend_that_passes_ready_first_among_them() {
        let checked = |health: u8| health + CHECK_FAILED;
        let mut order = [
            (checked(READY), 0),
            (FAILING, 2),
            (checked(FAILING), 0),
            (checked(UNKNOWN), 0),
            (checked(READY), 1),
        ];
        order.sort_by_key(|&(health, ring)| placed_rank(health, ring));
        assert_eq!(
            order,
            [
                (FAILING, 2),
                (checked(READY), 0),
                (checked(READY), 1),
                (checked(UNKNOWN), 0),
                (checked(FAILING), 0)
            ]
        );
    }

    #[test]
    fn in_panic_calls_go_to_backends_that_fail_their_check_ready_ones_first() {
        let checked = |health: u8| health + CHECK_FAILED;
        let backends = [
            (checked(FAILING), 0),
            (checked(READY), 1),
            (checked(READY), 2),
        ];
        assert_eq!(chosen(&backends, &[]), (vec![1], vec![1]));
        let backends = [(checked(FAILING), 0), (checked(UNKNOWN), 0)];
        assert_eq!(chosen(&backends, &[]), (vec![1], vec![1]));
        assert_eq!(chosen(&backends, &[1]), (vec![0], vec![0]));
    }

    /// (health, ring) of each backend → what `pick` and `pick_least` take, over many draws.
    fn chosen(backends: &[(u8, u8)], tried: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let rank = |i: usize| placed_rank(backends[i].0, backends[i].1);
        let excluded = |i: usize| tried.contains(&i);
        let mut cursor = 0;
        let mut round_robin: Vec<usize> = (0..6)
            .filter_map(|_| pick(backends.len(), rank, &mut cursor, excluded))
            .collect();
        let mut next = 0;
        let mut draw = |k: usize| {
            next += 1;
            next % k
        };
        let mut least: Vec<usize> = (0..12)
            .filter_map(|_| pick_least(backends.len(), rank, |_| (0, 0.0), excluded, &mut draw))
            .collect();
        for picks in [&mut round_robin, &mut least] {
            picks.sort();
            picks.dedup();
        }
        (round_robin, least)
    }

    #[test]
    fn the_preferred_ring_takes_every_call_while_it_has_a_ready_backend() {
        let backends = [(READY, 1), (READY, 0), (READY, 2), (READY, 0)];
        assert_eq!(chosen(&backends, &[]), (vec![1, 3], vec![1, 3]));
    }

    #[test]
    fn calls_spill_to_the_next_ring_when_the_preferred_one_is_not_ready() {
        let backends = [(READY, 2), (FAILING, 0), (READY, 1), (UNKNOWN, 0)];
        assert_eq!(chosen(&backends, &[]), (vec![2], vec![2]));
        let backends = [(READY, 2), (FAILING, 0), (FAILING, 1)];
        assert_eq!(chosen(&backends, &[]), (vec![0], vec![0]));
    }

    #[test]
    fn a_retry_spills_over_to_another_ring() {
        let backends = [(READY, 0), (READY, 1), (FAILING, 2)];
        assert_eq!(chosen(&backends, &[0]), (vec![1], vec![1]));
        assert_eq!(chosen(&backends, &[0, 1]), (vec![2], vec![2]));
    }

    #[test]
    fn placements_are_read_from_the_bus_names() {
        assert_eq!(
            Placement::from_parts("same_zone", 1),
            Some(Placement {
                locality: 2,
                ring: 1
            })
        );
        assert_eq!(Placement::from_parts("none", 9).map(|p| p.ring), Some(2));
        assert_eq!(Placement::from_parts("elsewhere", 0), None);
        assert_eq!(LOCALITIES[usize::from(NONE)], "none");
    }
}
