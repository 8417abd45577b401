//! What the fuzz targets share: one proxy configured with every provider kind (built
//! once per process through the real config path), and the front doors' entry points.

pub mod doors;
pub mod world;

/// Splits `data` into the pieces an upstream's bytes may arrive in: `every` bytes at
/// a time, or all at once when `every` is 0.
pub fn pieces(data: &[u8], every: u8) -> Vec<&[u8]> {
    match every {
        0 => vec![data],
        n => data.chunks(usize::from(n)).collect(),
    }
}
