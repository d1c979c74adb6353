//! `swalp-cli quantize`: round every tensor of a `.npy` or `.safetensors`
//! file onto a number format and write the result, leaving IN untouched and
//! OUT either complete or absent.

use std::path::Path;

use swalp_core::{QuantRng, Quantizer};
use tch::{Device, Kind};

use crate::cli::{BackendArg, DeviceArg, QuantizeArgs};
use crate::error::{CliError, Role};
use crate::io::{self, NamedTensor, TensorFileKind};

/// Runs `quantize` on IN and OUT (`--demo` is [`super::demo::run`]'s).
pub fn run(args: &QuantizeArgs) -> Result<(), CliError> {
    let (Some(input), Some(output)) = (args.input.as_deref(), args.output.as_deref()) else {
        return Err(CliError::Usage(
            "quantize needs IN and OUT (or --demo)".into(),
        ));
    };
    let spec = match args.specs.as_slice() {
        [one] => one,
        specs => {
            return Err(CliError::Usage(format!(
                "quantize with IN and OUT takes exactly one --spec, got {}; \
                 repeat --spec only with --demo",
                specs.len()
            )))
        }
    };
    let quantizer = build_quantizer(spec, args.backend)?;
    let device = select_device(args.device)?;
    let kind = file_kind(input, output)?;
    io::check_output(input, output)?;
    remove_stale_temp_files(output);

    let tensors = io::read_tensors(input, kind)?
        .into_iter()
        .map(|t| to_f32(t, input))
        .collect::<Result<Vec<_>, _>>()?;
    // In file order, one random stream each; each original is freed once
    // quantized.
    let mut rng = QuantRng::new(args.seed);
    let quantized = tensors
        .into_iter()
        .map(|t| quantize_tensor(&quantizer, t, device, &mut rng, input))
        .collect::<Result<Vec<_>, _>>()?;
    io::write_tensors(output, kind, &quantized)?;

    let values: usize = quantized.iter().map(|t| t.tensor.numel()).sum();
    log::info!(
        "quantized {} tensor(s), {values} values, of {} with {quantizer} into {}",
        quantized.len(),
        input.display(),
        output.display()
    );
    Ok(())
}

/// Removes the temporary files a killed `quantize` to the same OUT left
/// beside it (only OUT's own, only those no live process holds; see
/// [`crate::atomic::remove_stale_temp_files`]). Best effort: a failure to
/// clean up is a warning, not an error.
fn remove_stale_temp_files(output: &Path) {
    match crate::atomic::remove_stale_temp_files(output) {
        Ok(removed) => {
            for path in removed {
                log::info!(
                    "removed {} (left by an interrupted write of {})",
                    path.display(),
                    output.display()
                );
            }
        }
        Err(e) => log::warn!(
            "could not remove stale temporary files of OUT {}: {}",
            output.display(),
            crate::atomic::io_error_reason(&e)
        ),
    }
}

/// Parses a `--spec` and applies a `--backend` override.
pub(crate) fn build_quantizer(
    spec: &str,
    backend: Option<BackendArg>,
) -> Result<Quantizer, CliError> {
    let spec_error = |source| CliError::Spec {
        text: spec.to_string(),
        source,
    };
    let table = swalp_core::spec::parse_table(spec).map_err(spec_error)?;
    let quantizer = Quantizer::from_spec(&table).map_err(spec_error)?;
    Ok(match backend {
        Some(b) => quantizer.with_backend(b.into()),
        None => quantizer,
    })
}

/// The libtorch device for `--device`, if this machine has it.
pub(crate) fn select_device(arg: DeviceArg) -> Result<Device, CliError> {
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceArg::Cuda => Err(CliError::CudaUnavailable),
    }
}

/// The common kind of IN and OUT, which must agree.
fn file_kind(input: &Path, output: &Path) -> Result<TensorFileKind, CliError> {
    let in_kind = TensorFileKind::of(input, Role::Input)?;
    let out_kind = TensorFileKind::of(output, Role::Output)?;
    if in_kind != out_kind {
        return Err(CliError::ExtensionMismatch {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
        });
    }
    Ok(in_kind)
}

/// Brings a tensor to `f32`: other float dtypes are converted with a
/// warning, the rest refused.
fn to_f32(t: NamedTensor, path: &Path) -> Result<NamedTensor, CliError> {
    match t.tensor.kind() {
        Kind::Float => Ok(t),
        kind @ (Kind::Double | Kind::Half | Kind::BFloat16) => {
            log::warn!(
                "{}: converting {} to f32; OUT holds f32",
                t.describe(path),
                io::dtype_name(kind)
            );
            let tensor = t
                .tensor
                .f_to_kind(Kind::Float)
                .map_err(|e| CliError::Internal(e.to_string()))?;
            Ok(NamedTensor { tensor, ..t })
        }
        kind => Err(CliError::Dtype {
            tensor: t.describe(path).to_string(),
            dtype: io::dtype_name(kind),
        }),
    }
}

/// Quantizes one tensor on `device` and brings the result back to the CPU,
/// contiguous, ready to write.
fn quantize_tensor(
    quantizer: &Quantizer,
    t: NamedTensor,
    device: Device,
    rng: &mut QuantRng,
    path: &Path,
) -> Result<NamedTensor, CliError> {
    let internal = |e: tch::TchError| CliError::Internal(e.to_string());
    let x = t.tensor.f_to_device(device).map_err(internal)?;
    let y = quantizer
        .quantize(&x, rng)
        .map_err(|source| CliError::Quantize {
            tensor: t.describe(path).to_string(),
            source,
        })?;
    let tensor = y
        .f_to_device(Device::Cpu)
        .and_then(|y| y.f_contiguous())
        .map_err(internal)?;
    Ok(NamedTensor {
        name: t.name,
        tensor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_error(spec: &str) -> Option<String> {
        let table = swalp_core::spec::parse_table(spec).ok()?;
        Quantizer::from_spec(&table).err().map(|e| e.to_string())
    }

    #[test]
    fn misspelt_keys_are_caught_before_missing_ones() {
        let err = key_error(r#"{ format = "fixed", wll = 8, fl = 6 }"#).unwrap_or_default();
        assert!(err.contains("did you mean `wl`"), "{err}");
        assert_eq!(
            key_error(r#"{ format = "fixed", wl = 8, fl = 6, rounding = "up" }"#),
            None
        );
        let err = key_error(r#"{ format = "nope", wll = 8 }"#).unwrap_or_default();
        assert!(err.contains("unknown format \"nope\""), "{err}");
    }

    #[test]
    fn backend_flag_overrides_the_spec() {
        let spec = r#"{ format = "fixed", wl = 8, fl = 6, backend = "native" }"#;
        let q = build_quantizer(spec, Some(BackendArg::Tensor)).map(|q| q.backend());
        assert_eq!(q.ok(), Some(swalp_core::Backend::Tensor));
        let q = build_quantizer(spec, None).map(|q| q.backend());
        assert_eq!(q.ok(), Some(swalp_core::Backend::Native));
    }
}
