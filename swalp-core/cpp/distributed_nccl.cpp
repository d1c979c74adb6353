// NCCL for CUDA tensors. ProcessGroupNCCL.hpp includes the CUDA runtime's
// headers, which the PyTorch wheel ships incomplete (nvidia/cu13/include has
// cuda_runtime.h but not the crt/ and CCCL headers it includes); with-torch
// adds them from NVIDIA's nvidia-cuda-crt and nvidia-cuda-cccl wheels, and
// build.rs then compiles this file with USE_C10D_NCCL. Without them (or a
// libtorch without CUDA) the backend says why there is none.

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <stdexcept>

#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

c10::intrusive_ptr<c10d::Backend> swalp_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                     int rank, int world,
                                                     std::chrono::milliseconds timeout) {
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
}
#else
c10::intrusive_ptr<c10d::Backend> swalp_nccl_backend(const c10::intrusive_ptr<c10d::Store>&, int,
                                                     int, std::chrono::milliseconds) {
    throw std::runtime_error(
        "NCCL is not built into swalp's shim (libtorch without CUDA, or the CUDA runtime "
        "headers ProcessGroupNCCL.hpp needs were missing at build time: build through "
        "swalp-cli/scripts/with-torch, which adds them); train data-parallel on the CPU "
        "(experiment.device = \"cpu\", over Gloo)");
}
#endif
