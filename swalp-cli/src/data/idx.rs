//! The IDX file format's magic numbers (MNIST and Fashion-MNIST are
//! distributed as IDX files; [`super::mnist`] reads them).

/// Magic number of an IDX file of unsigned bytes in 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes in 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
