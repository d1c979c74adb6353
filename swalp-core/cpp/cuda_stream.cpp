// PyTorch's current CUDA stream, for the CUDA backend's launches: swalp's
// kernels run in stream order with libtorch's, so nothing waits on the
// host. Built against c10_cuda when the libtorch in use has it (the
// README's PyTorch wheel does); otherwise it reports that there is none.
//
// c10/cuda/CUDAStream.h needs the CUDA toolkit's headers, which the
// PyTorch wheel does not ship in full, so the two functions used are
// declared here as c10_cuda defines them: CUDAStream is a trivially
// copyable wrapper of one c10::Stream, and cudaStream_t is CUstream_st*.

#ifdef SWALP_WITH_CUDA
#include <c10/core/Stream.h>

struct CUstream_st;

namespace c10 {
namespace cuda {
class CUDAStream {
 public:
  CUstream_st* stream() const;

 private:
  c10::Stream stream_;
};
CUDAStream getCurrentCUDAStream(c10::DeviceIndex device_index);
}  // namespace cuda
}  // namespace c10

extern "C" void* swalp_cuda_current_stream(int device, int* ok) {
    try {
        auto stream = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device));
        *ok = 1;
        return static_cast<void*>(stream.stream());
    } catch (...) {
        *ok = 0;
        return nullptr;
    }
}
#else
extern "C" void* swalp_cuda_current_stream(int, int* ok) {
    *ok = 0;
    return nullptr;
}
#endif
