//! Image preprocessing as tensor ops on whole batches: normalisation, and the
//! SWALP seed's CIFAR training augmentation (random 32x32 crop of the image
//! zero-padded by 4 pixels, then a random horizontal flip).
//!
//! The randomness is an argument: one uniform 32-bit draw per example, which
//! the caller takes from a counter-based stream
//! ([`swalp_core::RandomStream::bits`], indexed by the example's position in
//! the epoch, say). The crops and flips are then a pure function of the
//! draws, so a batch comes out the same on any thread, device, or after a
//! resume; tch's global generator is never used.
//!
//! Order, as in the seed (torchvision's `RandomCrop(32, padding=4)`,
//! `RandomHorizontalFlip()`, `ToTensor()`, `Normalize(mean, std)`): crop and
//! flip the `Uint8` images first, then [`normalize`]. The padding is zero in
//! the tensor it is applied to: black pixels before normalisation (the seed),
//! but `0` in normalised units (a mid grey) if applied after.

use swalp_core::tch::{Kind, Tensor};

/// CIFAR per-channel (R, G, B) mean used by the SWALP seed, for CIFAR-10 and
/// CIFAR-100.
pub const CIFAR_MEAN: [f64; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR per-channel standard deviation used by the SWALP seed.
pub const CIFAR_STD: [f64; 3] = [0.2023, 0.1994, 0.2010];
/// MNIST mean (the usual torchvision example value).
pub const MNIST_MEAN: [f64; 1] = [0.1307];
/// MNIST standard deviation.
pub const MNIST_STD: [f64; 1] = [0.3081];
/// Fashion-MNIST mean of its training pixels.
pub const FASHION_MNIST_MEAN: [f64; 1] = [0.2860];
/// Fashion-MNIST standard deviation of its training pixels.
pub const FASHION_MNIST_STD: [f64; 1] = [0.3530];
/// The seed's CIFAR crop padding, in pixels.
pub const CIFAR_PAD: i64 = 4;

/// `Uint8` images `[N, C, H, W]` (any device) to `Float`:
/// `(x / 255 − mean[c]) / std[c]`, computed in f32 exactly as torchvision's
/// `ToTensor()` then `Normalize(mean, std)` do.
///
/// # Panics
///
/// If `images_u8` is not 4-dimensional, or `mean` and `std` do not have one
/// value per channel.
pub fn normalize(images_u8: &Tensor, mean: &[f64], std: &[f64]) -> Tensor {
    let size = images_u8.size();
    assert!(
        size.len() == 4,
        "normalize: expected [N, C, H, W] images, got shape {size:?}"
    );
    let channels = size[1];
    assert!(
        mean.len() as i64 == channels && std.len() as i64 == channels,
        "normalize: {} means and {} stds for {channels} channels",
        mean.len(),
        std.len()
    );
    let device = images_u8.device();
    let per_channel = |v: &[f64]| {
        let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::from_slice(&v)
            .to_device(device)
            .view([channels, 1, 1])
    };
    (images_u8.to_kind(Kind::Float) / 255.0 - per_channel(mean)) / per_channel(std)
}

/// The crop and flip of one example.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropFlip {
    /// Column of the padded image where the crop starts, `0..=2·pad`
    /// (`pad` means no horizontal shift).
    pub dx: i64,
    /// Row of the padded image where the crop starts, `0..=2·pad`.
    pub dy: i64,
    /// Whether the crop is mirrored left to right.
    pub flip: bool,
}

impl CropFlip {
    /// The crop and flip a uniform 32-bit `draw` selects, for padding `pad`.
    /// With `n = 2·pad + 1` offsets:
    ///
    /// | bits | use |
    /// |---|---|
    /// | 0..=15 (`draw & 0xFFFF`) | `dx = (bits · n) >> 16` |
    /// | 16..=30 (`(draw >> 16) & 0x7FFF`) | `dy = (bits · n) >> 15` |
    /// | 31 (`draw >> 31`) | `flip = bit == 1` |
    ///
    /// Each offset is chosen by `⌊2^16/n⌋` or `⌈2^16/n⌉` of the 2^16 values
    /// of its bits (2^15 for `dy`), i.e. uniformly up to a relative bias below
    /// `n/2^15` (3·10⁻⁴ for `pad = 4`).
    ///
    /// # Panics
    ///
    /// If `pad` is not in `0..2^14`.
    pub fn from_draw(draw: u32, pad: i64) -> Self {
        assert!(
            (0..1 << 14).contains(&pad),
            "crop padding {pad} out of range 0..16384"
        );
        let n = (2 * pad + 1) as u64;
        let dx = (u64::from(draw & 0xFFFF) * n) >> 16;
        let dy = (u64::from((draw >> 16) & 0x7FFF) * n) >> 15;
        CropFlip {
            dx: dx as i64,
            dy: dy as i64,
            flip: draw >> 31 == 1,
        }
    }
}

/// Random crop with zero padding and random horizontal flip of a batch
/// `[B, C, H, W]` (any kind, any device), example `b` transformed by
/// [`CropFlip::from_draw`]`(draws[b], pad)`: see [`crop_flip`].
///
/// # Panics
///
/// If the batch is not 4-dimensional, `draws` does not have one draw per
/// example, or `pad` is out of range.
pub fn random_crop_flip(batch: &Tensor, pad: i64, draws: &[u32]) -> Tensor {
    let params: Vec<CropFlip> = draws.iter().map(|&d| CropFlip::from_draw(d, pad)).collect();
    crop_flip(batch, pad, &params)
}

/// The seed's CIFAR training augmentation, [`random_crop_flip`] with
/// [`CIFAR_PAD`]; apply it to `Uint8` images, before [`normalize`].
pub fn cifar_train_augment(batch: &Tensor, draws: &[u32]) -> Tensor {
    random_crop_flip(batch, CIFAR_PAD, draws)
}

/// Crops and flips each example of a batch `[B, C, H, W]` (any kind, any
/// device) as `params[b]` says: the image is padded with `pad` zeros on every
/// side, the `H x W` window starting at row `dy`, column `dx` is taken, and
/// mirrored left to right if `flip`. Output pixel `(y, x)` is input pixel
/// `(y + dy − pad, x' + dx − pad)` with `x' = W − 1 − x` if flipped, else
/// `x`, or 0 where that falls outside the image. Same shape, kind and device
/// as the input.
///
/// # Panics
///
/// If the batch is not 4-dimensional, `params` does not have one entry per
/// example, or an offset is outside `0..=2·pad`.
pub fn crop_flip(batch: &Tensor, pad: i64, params: &[CropFlip]) -> Tensor {
    let (b, c, h, w) = match batch.size4() {
        Ok(size) => size,
        Err(_) => panic!(
            "crop_flip: expected a [B, C, H, W] batch, got shape {:?}",
            batch.size()
        ),
    };
    assert_eq!(
        params.len() as i64,
        b,
        "crop_flip: {} crops for a batch of {b}",
        params.len()
    );
    assert!(pad >= 0, "crop_flip: negative padding {pad}");
    for p in params {
        assert!(
            (0..=2 * pad).contains(&p.dx) && (0..=2 * pad).contains(&p.dy),
            "crop_flip: offsets {p:?} outside 0..={} for padding {pad}",
            2 * pad
        );
    }
    if b == 0 {
        return batch.copy();
    }
    let device = batch.device();
    let column = |v: Vec<i64>| Tensor::from_slice(&v).to_device(device).view([b, 1]);
    let dy = column(params.iter().map(|p| p.dy).collect());
    let dx = column(params.iter().map(|p| p.dx).collect());
    let flip = column(params.iter().map(|p| i64::from(p.flip)).collect());
    let arange = |n: i64| Tensor::arange(n, (Kind::Int64, device)).view([1, n]);
    // Rows and columns of the padded image each output pixel comes from.
    let rows = arange(h) + &dy;
    let x = arange(w);
    let mirrored = x.neg() + (w - 1);
    let cols = (&flip * mirrored + (flip.neg() + 1) * x) + &dx;
    let padded = batch.constant_pad_nd([pad, pad, pad, pad]);
    let rows = rows
        .view([b, 1, h, 1])
        .expand([b, c, h, w + 2 * pad], false);
    let picked_rows = padded.gather(2, &rows.contiguous(), false);
    let cols = cols.view([b, 1, 1, w]).expand([b, c, h, w], false);
    picked_rows.gather(3, &cols.contiguous(), false)
}
