//! The [`Snapshot`] every source fills in one cycle. It holds each
//! family's stats as a [`FamilySample`] without knowing its type: a family
//! owns its stats type and mapping, and a later step that reads a family's
//! values finds them by type ([`Snapshot::get`]), importing the family,
//! never the other way round. The sampler that runs the sources is in
//! `crate::snapshot`.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use crate::point::Point;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// What the families (`crate::families`) read this cycle, one entry
    /// per stats type, in the order they were first written. Each maps
    /// itself to points; a later step finds one by its type ([`Snapshot::get`]).
    families: Vec<Arc<dyn FamilySample>>,
    pub sources: Vec<SourceStatus>,
}

/// The stats a family under `src/families/` leaves in the snapshot. The
/// family owns its type and its mapping: the snapshot holds it without
/// knowing it and only asks it for its points. `snap` is the whole cycle,
/// for a mapping that reads another family's values (a service's VRAM from
/// the GPU's process list).
pub trait FamilySample: Any + Debug + Send + Sync {
    fn points(&self, snap: &Snapshot, out: &mut Vec<Point>);
}

impl Snapshot {
    /// The cycle's stats of type `T`, if a source wrote them.
    pub fn get<T: FamilySample>(&self) -> Option<&T> {
        self.families
            .iter()
            .find_map(|f| (&**f as &dyn Any).downcast_ref::<T>())
    }

    /// Writes `stats`, replacing what the cycle held of that type.
    pub fn put<T: FamilySample>(&mut self, stats: T) {
        let stats = Arc::new(stats);
        match self.position::<T>() {
            Some(i) => self.families[i] = stats,
            None => self.families.push(stats),
        }
    }

    /// The cycle's stats of type `T` to change, created empty first if no
    /// source wrote them yet (several sources fill one type: RAPL, hwmon and
    /// the battery fill the power domains).
    pub fn get_or_default<T: FamilySample + Default + Clone>(&mut self) -> &mut T {
        let i = match self.position::<T>() {
            Some(i) => i,
            None => {
                self.families.push(Arc::new(T::default()));
                self.families.len() - 1
            }
        };
        let slot = &mut self.families[i];
        if Arc::get_mut(slot).is_none() {
            // Shared with a clone of this snapshot: copy before writing.
            let copy = (&**slot as &dyn Any)
                .downcast_ref::<T>()
                .cloned()
                .unwrap_or_default();
            *slot = Arc::new(copy);
        }
        // The slot was just made unique, and `position` found it of type T.
        #[allow(clippy::expect_used)]
        Arc::get_mut(slot)
            .and_then(|f| (f as &mut dyn Any).downcast_mut::<T>())
            .expect("a unique slot of type T")
    }

    /// This snapshot with `stats` written (tests, and readers a test
    /// stands in for).
    pub fn with<T: FamilySample>(mut self, stats: T) -> Self {
        self.put(stats);
        self
    }

    /// Removes and returns the cycle's stats of type `T` (moved out, copied
    /// only when a clone of this snapshot still shares them).
    pub fn take<T: FamilySample + Clone>(&mut self) -> Option<T> {
        let i = self.position::<T>()?;
        let any: Arc<dyn Any + Send + Sync> = self.families.remove(i);
        let typed = any.downcast::<T>().ok()?;
        Some(Arc::try_unwrap(typed).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// Every family's stats, in the order they were written.
    pub fn families(&self) -> impl Iterator<Item = &dyn FamilySample> {
        self.families.iter().map(|f| &**f)
    }

    fn position<T: FamilySample>(&self) -> Option<usize> {
        self.families
            .iter()
            .position(|f| (&**f as &dyn Any).is::<T>())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceStatus {
    pub name: &'static str,
    pub up: bool,
    pub duration: Duration,
    /// Why the source is down.
    pub error: Option<super::SourceError>,
    /// How to fix it ([`Source::hint`](super::Source::hint)).
    pub hint: Option<&'static str>,
}
