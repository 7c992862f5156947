//! Time as an input: the core never reads a clock (STYLE rule 6).

/// Wall-clock (`CLOCK_REALTIME`) seconds, as System V reports times; 0 means never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Time(pub i64);

impl Time {
    /// "Never": the value of a time field that was never set.
    pub const NEVER: Time = Time(0);
}
