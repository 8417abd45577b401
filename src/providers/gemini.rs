//! Gemini: not built yet. Config validation refuses this kind until its adapter exists.

use super::{Kind, NotBuilt};

pub(super) static ADAPTER: NotBuilt = NotBuilt(Kind::Gemini);
