//! NVRTC, CUDA's run-time compiler, loaded when first used: kernel sources
//! to PTX (for an architecture family, `compute_90`) or to a CUBIN (for one
//! GPU, `sm_90`). It needs no GPU, so the test suite compiles every kernel
//! here.
//!
//! The library is looked for in `SWALP_NVRTC` (a path to `libnvrtc.so*`),
//! then in the PyTorch wheel's `nvidia/cu13/lib` found at build time, then
//! by name on the loader's path. Its companion `libnvrtc-builtins` is
//! loaded first from the same directory, so no `LD_LIBRARY_PATH` is needed.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libloading::Library;

use super::{CudaError, CudaSource};

type Program = *mut c_void;

/// The NVRTC functions swalp calls.
struct Api {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int,
    error_string: unsafe extern "C" fn(c_int) -> *const c_char,
    create: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int,
    destroy: unsafe extern "C" fn(*mut Program) -> c_int,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    log: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    ptx_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    ptx: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    cubin_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    cubin: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    // Keeps the functions above valid.
    _libraries: Vec<Library>,
}

/// What to compile to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// PTX for the virtual architecture `compute_<cc>` (such as 90): runs
    /// on that architecture and later ones after the driver's JIT.
    Ptx(u32),
    /// A CUBIN for the real architecture `sm_<cc>`: one GPU family, loaded
    /// without JIT.
    Cubin(u32),
}

impl Target {
    /// NVRTC's name of the architecture.
    pub fn arch(self) -> String {
        match self {
            Target::Ptx(cc) => format!("compute_{cc}"),
            Target::Cubin(cc) => format!("sm_{cc}"),
        }
    }
}

const LIBRARY: &str = "NVRTC (libnvrtc.so)";

static API: OnceLock<Result<Api, CudaError>> = OnceLock::new();

fn api() -> Result<&'static Api, CudaError> {
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Whether NVRTC can be loaded here.
///
/// ```
/// // True on a machine with the README's PyTorch wheel.
/// let _ = swalp_core::cuda::nvrtc::available();
/// ```
pub fn available() -> bool {
    api().is_ok()
}

/// `Ok` when NVRTC can be loaded here, or why not.
pub fn status() -> Result<(), CudaError> {
    api().map(|_| ())
}

/// NVRTC's version, `(major, minor)`.
pub fn version() -> Result<(i32, i32), CudaError> {
    let api = api()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two out-parameters.
    check(api, "nvrtcVersion", unsafe {
        (api.version)(&mut major, &mut minor)
    })?;
    Ok((major, minor))
}

/// The places NVRTC is looked for, in order.
fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(path) = std::env::var_os("SWALP_NVRTC") {
        paths.push(PathBuf::from(path));
    }
    if let Some(dir) = option_env!("SWALP_NVRTC_DIR") {
        paths.push(Path::new(dir).join("libnvrtc.so.13"));
    }
    for name in ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"] {
        paths.push(PathBuf::from(name));
    }
    paths
}

fn load() -> Result<Api, CudaError> {
    let mut reasons = Vec::new();
    for path in candidates() {
        match open(&path) {
            Ok(api) => return Ok(api),
            Err(e) => reasons.push(format!("{}: {e}", path.display())),
        }
    }
    Err(CudaError::Load {
        library: LIBRARY.into(),
        reason: reasons.join("; "),
    })
}

/// Opens NVRTC at `path` (a bare name searches the loader's path), its
/// builtins first when `path` is in a directory.
fn open(path: &Path) -> Result<Api, libloading::Error> {
    let mut libraries = Vec::new();
    if let Some(builtins) = path.parent().and_then(builtins_in) {
        // Loaded globally, NVRTC's own dlopen of it by name finds it.
        libraries.push(open_global(&builtins)?);
    }
    let lib = open_global(path)?;
    // SAFETY: each symbol is NVRTC's C function of the declared signature
    // (nvrtc.h, stable since CUDA 11.1).
    let api = unsafe {
        Api {
            version: *lib.get(b"nvrtcVersion\0")?,
            error_string: *lib.get(b"nvrtcGetErrorString\0")?,
            create: *lib.get(b"nvrtcCreateProgram\0")?,
            destroy: *lib.get(b"nvrtcDestroyProgram\0")?,
            compile: *lib.get(b"nvrtcCompileProgram\0")?,
            log_size: *lib.get(b"nvrtcGetProgramLogSize\0")?,
            log: *lib.get(b"nvrtcGetProgramLog\0")?,
            ptx_size: *lib.get(b"nvrtcGetPTXSize\0")?,
            ptx: *lib.get(b"nvrtcGetPTX\0")?,
            cubin_size: *lib.get(b"nvrtcGetCUBINSize\0")?,
            cubin: *lib.get(b"nvrtcGetCUBIN\0")?,
            _libraries: Vec::new(),
        }
    };
    libraries.push(lib);
    Ok(Api {
        _libraries: libraries,
        ..api
    })
}

/// `libnvrtc-builtins.so.*` in `dir` (not the `.alt` variant).
fn builtins_in(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("libnvrtc-builtins.so"))
    })
}

#[cfg(unix)]
fn open_global(path: &Path) -> Result<Library, libloading::Error> {
    use libloading::os::unix::{Library as UnixLibrary, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: NVRTC's initialisers have no preconditions.
    unsafe { UnixLibrary::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map(Library::from)
}

#[cfg(not(unix))]
fn open_global(path: &Path) -> Result<Library, libloading::Error> {
    // SAFETY: NVRTC's initialisers have no preconditions.
    unsafe { Library::new(path) }
}

fn check(api: &Api, function: &'static str, code: c_int) -> Result<(), CudaError> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: NVRTC returns a static string for any code.
    let message = unsafe { CStr::from_ptr((api.error_string)(code)) }
        .to_string_lossy()
        .into_owned();
    Err(CudaError::Call {
        function,
        code,
        message,
    })
}

fn c_string(text: &str) -> CString {
    // Sources and names are ours or a format's; a NUL would end them early
    // in C, so it is replaced rather than trusted.
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

/// Compiles `sources[0]` (including the others by name) for `target`;
/// `entry` names the kernel in errors. Returns the PTX text (NUL ended) or
/// the CUBIN.
///
/// Options: no fused multiply-adds (`--fmad=false`), IEEE division and
/// square root, denormals kept: the kernels' arithmetic is the native
/// kernels', operation for operation.
pub fn compile(sources: &[CudaSource], entry: &str, target: Target) -> Result<Vec<u8>, CudaError> {
    let api = api()?;
    let (main, headers) = sources.split_first().ok_or_else(|| CudaError::Compile {
        entry: entry.into(),
        arch: target.arch(),
        log: "error: no source".into(),
    })?;
    let text = c_string(main.text);
    let name = c_string(main.name);
    let header_texts: Vec<CString> = headers.iter().map(|h| c_string(h.text)).collect();
    let header_names: Vec<CString> = headers.iter().map(|h| c_string(h.name)).collect();
    let text_ptrs: Vec<*const c_char> = header_texts.iter().map(|c| c.as_ptr()).collect();
    let name_ptrs: Vec<*const c_char> = header_names.iter().map(|c| c.as_ptr()).collect();
    let mut program: Program = std::ptr::null_mut();
    // SAFETY: every pointer is a live NUL-ended string; the arrays hold
    // `headers.len()` entries.
    check(api, "nvrtcCreateProgram", unsafe {
        (api.create)(
            &mut program,
            text.as_ptr(),
            name.as_ptr(),
            headers.len() as c_int,
            text_ptrs.as_ptr(),
            name_ptrs.as_ptr(),
        )
    })?;
    let result = compile_program(api, program, entry, target);
    // SAFETY: `program` was created above and is destroyed once.
    unsafe { (api.destroy)(&mut program) };
    result
}

fn compile_program(
    api: &Api,
    program: Program,
    entry: &str,
    target: Target,
) -> Result<Vec<u8>, CudaError> {
    let options = [
        format!("--gpu-architecture={}", target.arch()),
        "--fmad=false".into(),
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
        "--ftz=false".into(),
        "--std=c++17".into(),
    ];
    let options: Vec<CString> = options.iter().map(|o| c_string(o)).collect();
    let option_ptrs: Vec<*const c_char> = options.iter().map(|c| c.as_ptr()).collect();
    // SAFETY: `program` is live; the options are live strings.
    let code = unsafe { (api.compile)(program, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
    if code != 0 {
        return Err(CudaError::Compile {
            entry: entry.into(),
            arch: target.arch(),
            log: program_log(api, program),
        });
    }
    let (size_fn, get_fn, what) = match target {
        Target::Ptx(_) => (api.ptx_size, api.ptx, "nvrtcGetPTX"),
        Target::Cubin(_) => (api.cubin_size, api.cubin, "nvrtcGetCUBIN"),
    };
    let mut size = 0usize;
    // SAFETY: `program` compiled; one out-parameter.
    check(api, what, unsafe { size_fn(program, &mut size) })?;
    let mut image = vec![0u8; size];
    // SAFETY: `image` holds the `size` bytes NVRTC reported.
    check(api, what, unsafe {
        get_fn(program, image.as_mut_ptr().cast())
    })?;
    Ok(image)
}

fn program_log(api: &Api, program: Program) -> String {
    let mut size = 0usize;
    // SAFETY: `program` is live; one out-parameter.
    if unsafe { (api.log_size)(program, &mut size) } != 0 || size == 0 {
        return String::new();
    }
    let mut log = vec![0u8; size];
    // SAFETY: `log` holds the `size` bytes NVRTC reported.
    if unsafe { (api.log)(program, log.as_mut_ptr().cast()) } != 0 {
        return String::new();
    }
    String::from_utf8_lossy(&log)
        .trim_end_matches('\0')
        .to_string()
}
