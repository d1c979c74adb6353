//! The CUDA driver API (`libcuda.so.1`, installed with the NVIDIA driver),
//! loaded when a CUDA tensor is first rounded: modules compiled by NVRTC
//! are loaded into the device's primary context (the one PyTorch uses) and
//! their kernels launched on a given stream.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

use libloading::Library;

use super::nvrtc::{self, Target};
use super::{CudaError, CudaKernel};

type Context = *mut c_void;
type Module = *mut c_void;
type Function = *mut c_void;
/// A `CUstream` (`cudaStream_t`).
pub type Stream = *mut c_void;

struct Api {
    init: unsafe extern "C" fn(c_uint) -> c_int,
    error_string: unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int,
    device_get: unsafe extern "C" fn(*mut c_int, c_int) -> c_int,
    attribute: unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int,
    primary_retain: unsafe extern "C" fn(*mut Context, c_int) -> c_int,
    push: unsafe extern "C" fn(Context) -> c_int,
    pop: unsafe extern "C" fn(*mut Context) -> c_int,
    load: unsafe extern "C" fn(*mut Module, *const c_void) -> c_int,
    function: unsafe extern "C" fn(*mut Function, Module, *const c_char) -> c_int,
    #[allow(clippy::type_complexity)]
    launch: unsafe extern "C" fn(
        Function,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        Stream,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> c_int,
    _library: Library,
}

// SAFETY: the driver API is thread-safe; the struct holds function
// pointers and the library that keeps them valid.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

static API: OnceLock<Result<Api, CudaError>> = OnceLock::new();

fn api() -> Result<&'static Api, CudaError> {
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Api, CudaError> {
    let fail = |e: libloading::Error| CudaError::Load {
        library: "the CUDA driver (libcuda.so.1)".into(),
        reason: e.to_string(),
    };
    // SAFETY: the driver's initialisers have no preconditions.
    let lib = unsafe { Library::new("libcuda.so.1") }.map_err(fail)?;
    // SAFETY: each symbol is the driver API function of the declared
    // signature (cuda.h; the `_v2` names are the current ABI).
    let api = unsafe {
        Api {
            init: *lib.get(b"cuInit\0").map_err(fail)?,
            error_string: *lib.get(b"cuGetErrorString\0").map_err(fail)?,
            device_get: *lib.get(b"cuDeviceGet\0").map_err(fail)?,
            attribute: *lib.get(b"cuDeviceGetAttribute\0").map_err(fail)?,
            primary_retain: *lib.get(b"cuDevicePrimaryCtxRetain\0").map_err(fail)?,
            push: *lib.get(b"cuCtxPushCurrent_v2\0").map_err(fail)?,
            pop: *lib.get(b"cuCtxPopCurrent_v2\0").map_err(fail)?,
            load: *lib.get(b"cuModuleLoadData\0").map_err(fail)?,
            function: *lib.get(b"cuModuleGetFunction\0").map_err(fail)?,
            launch: *lib.get(b"cuLaunchKernel\0").map_err(fail)?,
            _library: lib,
        }
    };
    // SAFETY: no arguments beyond the flags (0).
    check(&api, "cuInit", unsafe { (api.init)(0) })?;
    Ok(api)
}

/// Whether the driver loads and initialises.
pub fn available() -> bool {
    api().is_ok()
}

/// `Ok` when the driver loads and initialises, or why not.
pub fn status() -> Result<(), CudaError> {
    api().map(|_| ())
}

fn check(api: &Api, function: &'static str, code: c_int) -> Result<(), CudaError> {
    if code == 0 {
        return Ok(());
    }
    let mut text: *const c_char = std::ptr::null();
    // SAFETY: one out-parameter; the string is static when set.
    let message = if unsafe { (api.error_string)(code, &mut text) } == 0 && !text.is_null() {
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    } else {
        "unknown error".into()
    };
    Err(CudaError::Call {
        function,
        code,
        message,
    })
}

/// A device's primary context and what swalp needs to know of it.
struct Device {
    context: Context,
    capability: u32,
    multiprocessors: u32,
}

/// A loaded kernel and the block-maxima kernel of its module.
#[derive(Clone, Copy)]
pub(super) struct Loaded {
    pub(super) kernel: Function,
    pub(super) maxima: Function,
    pub(super) multiprocessors: u32,
}

struct Cache {
    devices: HashMap<i32, Device>,
    /// (device, entry, source text address): modules loaded.
    modules: HashMap<(i32, &'static str, usize), Loaded>,
}

// SAFETY: the handles are driver objects usable from any thread.
unsafe impl Send for Cache {}

static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();

/// `kernel`'s functions on CUDA device `ordinal`, compiled (NVRTC, a CUBIN
/// for the device's architecture) and loaded on first use.
pub(super) fn load_kernel(ordinal: i32, kernel: &CudaKernel) -> Result<Loaded, CudaError> {
    let api = api()?;
    let cache = CACHE.get_or_init(|| {
        Mutex::new(Cache {
            devices: HashMap::new(),
            modules: HashMap::new(),
        })
    });
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let key = (ordinal, kernel.entry, kernel.source.text.as_ptr() as usize);
    if let Some(loaded) = cache.modules.get(&key) {
        return Ok(*loaded);
    }
    if let std::collections::hash_map::Entry::Vacant(slot) = cache.devices.entry(ordinal) {
        slot.insert(open_device(api, ordinal)?);
    }
    let device = &cache.devices[&ordinal];
    let image = nvrtc::compile(
        &kernel.sources(),
        kernel.entry,
        Target::Cubin(device.capability),
    )?;
    let loaded = with_context(api, device.context, || {
        let mut module: Module = std::ptr::null_mut();
        // SAFETY: `image` is a CUBIN; the context is current.
        check(api, "cuModuleLoadData", unsafe {
            (api.load)(&mut module, image.as_ptr().cast())
        })?;
        Ok(Loaded {
            kernel: function(api, module, kernel.entry)?,
            maxima: function(api, module, "swalp_block_maxima")?,
            multiprocessors: device.multiprocessors,
        })
    })?;
    cache.modules.insert(key, loaded);
    Ok(loaded)
}

fn open_device(api: &Api, ordinal: i32) -> Result<Device, CudaError> {
    let mut device = 0;
    // SAFETY: out-parameters only.
    check(api, "cuDeviceGet", unsafe {
        (api.device_get)(&mut device, ordinal)
    })?;
    let attribute = |attr: c_int| -> Result<i32, CudaError> {
        let mut v = 0;
        // SAFETY: out-parameter; `attr` is a valid CUdevice_attribute.
        check(api, "cuDeviceGetAttribute", unsafe {
            (api.attribute)(&mut v, attr, device)
        })?;
        Ok(v)
    };
    const MULTIPROCESSOR_COUNT: c_int = 16;
    const CAPABILITY_MAJOR: c_int = 75;
    const CAPABILITY_MINOR: c_int = 76;
    let capability = attribute(CAPABILITY_MAJOR)? * 10 + attribute(CAPABILITY_MINOR)?;
    let multiprocessors = attribute(MULTIPROCESSOR_COUNT)?;
    let mut context: Context = std::ptr::null_mut();
    // SAFETY: out-parameter; the primary context is PyTorch's too and is
    // retained for the life of the process.
    check(api, "cuDevicePrimaryCtxRetain", unsafe {
        (api.primary_retain)(&mut context, device)
    })?;
    Ok(Device {
        context,
        capability: capability as u32,
        multiprocessors: multiprocessors.max(1) as u32,
    })
}

fn function(api: &Api, module: Module, name: &str) -> Result<Function, CudaError> {
    let name = CString::new(name).unwrap_or_default();
    let mut f: Function = std::ptr::null_mut();
    // SAFETY: `module` is loaded; `name` is a live string.
    check(api, "cuModuleGetFunction", unsafe {
        (api.function)(&mut f, module, name.as_ptr())
    })?;
    Ok(f)
}

/// Runs `f` with `context` current on this thread, restoring the previous
/// one after.
fn with_context<T>(
    api: &Api,
    context: Context,
    f: impl FnOnce() -> Result<T, CudaError>,
) -> Result<T, CudaError> {
    // SAFETY: `context` is a retained primary context.
    check(api, "cuCtxPushCurrent", unsafe { (api.push)(context) })?;
    let result = f();
    let mut popped: Context = std::ptr::null_mut();
    // SAFETY: pops what was pushed above.
    let pop = check(api, "cuCtxPopCurrent", unsafe { (api.pop)(&mut popped) });
    let value = result?;
    pop?;
    Ok(value)
}

/// Launches `function` over `n` elements on `stream` of device `ordinal`
/// with the given argument pointers (one per kernel parameter), without
/// waiting for it.
pub(super) fn launch(
    ordinal: i32,
    loaded: &Loaded,
    function: Function,
    n: u64,
    stream: Stream,
    args: &mut [*mut c_void],
) -> Result<(), CudaError> {
    let api = api()?;
    let context = {
        let cache = CACHE
            .get()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()));
        cache
            .and_then(|c| c.devices.get(&ordinal).map(|d| d.context))
            .ok_or(CudaError::Call {
                function: "cuLaunchKernel",
                code: -1,
                message: format!("device {ordinal} has no loaded module"),
            })?
    };
    const THREADS: u64 = 256;
    // Enough blocks to fill the device a few times over; the kernels loop
    // over the rest (grid-stride).
    let blocks = n
        .div_ceil(THREADS)
        .clamp(1, u64::from(loaded.multiprocessors) * 16) as c_uint;
    with_context(api, context, || {
        // SAFETY: `args` points at one value per kernel parameter, of the
        // kernel's parameter types; `stream` belongs to this context.
        check(api, "cuLaunchKernel", unsafe {
            (api.launch)(
                function,
                blocks,
                1,
                1,
                THREADS as c_uint,
                1,
                1,
                0,
                stream,
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        })
    })
}
