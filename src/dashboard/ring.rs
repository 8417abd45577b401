//! A bounded list of the latest events, newest dropped last: the dashboard's failed
//! attempts and reload history. Written only when something goes wrong or a config
//! is loaded, so a plain mutex held for one push is cheap enough.

use std::collections::VecDeque;
use std::sync::Mutex;

pub struct Ring<T> {
    capacity: usize,
    items: Mutex<VecDeque<T>>,
}

impl<T: Clone> Ring<T> {
    pub fn new(capacity: usize) -> Ring<T> {
        Ring {
            capacity,
            items: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    pub fn push(&self, item: T) {
        if self.capacity == 0 {
            return;
        }
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.len() == self.capacity {
            items.pop_front();
        }
        items.push_back(item);
    }

    /// Everything held, newest first.
    pub fn newest_first(&self) -> Vec<T> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_capacity_items_newest_first() {
        let r = Ring::new(3);
        assert!(r.newest_first().is_empty());
        for i in 1..=5 {
            r.push(i);
        }
        assert_eq!(r.newest_first(), vec![5, 4, 3]);
    }

    #[test]
    fn below_capacity_keeps_everything() {
        let r = Ring::new(50);
        r.push("a");
        r.push("b");
        assert_eq!(r.newest_first(), vec!["b", "a"]);
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let r = Ring::new(0);
        r.push(1);
        assert!(r.newest_first().is_empty());
    }
}
