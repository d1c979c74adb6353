// The autograd node behind swalp's activation/error quantization point.
//
// tch exposes neither custom autograd functions nor tensor hooks, so this file
// builds the graph node directly: `swalp_hook_apply` quantizes the forward
// value through a Rust callback and, when the input takes part in autograd,
// attaches a `SwalpQuantBackward` node whose `apply` quantizes the incoming
// gradient through the same callback. The node owns one reference to the
// Rust-side hook and releases it when the graph is freed, so the quantizer
// outlives every graph that uses it.
//
// No Rust symbol is referenced at link time: the callbacks arrive as function
// pointers, which keeps link order irrelevant.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

extern "C" {
// Quantizes `input` (ownership passes to Rust) in `direction` 0 (forward) or
// 1 (backward). Returns a new tensor owned by the caller, or null after
// writing a message into `err`.
typedef at::Tensor* (*swalp_quantize_fn)(const void* hook, int direction, at::Tensor* input,
                                         char* err, size_t err_len);
// Drops one reference to the hook.
typedef void (*swalp_release_fn)(const void* hook);
}

namespace {

struct HookRef {
    const void* hook;
    swalp_quantize_fn quantize;
    swalp_release_fn release;
    HookRef(const void* h, swalp_quantize_fn q, swalp_release_fn r) : hook(h), quantize(q), release(r) {}
    HookRef(const HookRef&) = delete;
    HookRef& operator=(const HookRef&) = delete;
    ~HookRef() { release(hook); }

    at::Tensor call(int direction, const at::Tensor& x) const {
        char err[1024] = {0};
        at::Tensor* out = quantize(hook, direction, new at::Tensor(x), err, sizeof err);
        if (out == nullptr) {
            throw std::runtime_error(err);
        }
        at::Tensor result = std::move(*out);
        delete out;
        return result;
    }
};

struct SwalpQuantBackward : public torch::autograd::Node {
    std::shared_ptr<HookRef> hook;

    torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
        if (!grads[0].defined()) {
            return {at::Tensor()};
        }
        return {hook->call(1, grads[0])};
    }

    std::string name() const override { return "SwalpQuantBackward"; }
};

}  // namespace

// Applies the hook to `input`: `*output` receives the quantized value, wired
// into the autograd graph when `input` requires grad and grad mode is on.
// Takes over one reference to `hook` in every case. Returns 0, or 1 after
// writing a message into `err`.
extern "C" int swalp_hook_apply(const void* hook, swalp_quantize_fn quantize, swalp_release_fn release,
                                const at::Tensor* input, at::Tensor** output, char* err, size_t err_len) {
    // Until a HookRef owns the reference (make_shared can throw before it
    // exists), releasing it is this function's job.
    bool owned = false;
    try {
        auto ref = std::make_shared<HookRef>(hook, quantize, release);
        owned = true;
        const at::Tensor& x = *input;
        at::Tensor y;
        {
            at::NoGradGuard no_grad;
            y = ref->call(0, x.detach());
        }
        if (x.requires_grad() && at::GradMode::is_enabled()) {
            auto node = std::shared_ptr<SwalpQuantBackward>(new SwalpQuantBackward(), torch::autograd::deleteNode);
            node->hook = ref;
            node->set_next_edges(torch::autograd::collect_next_edges(x));
            torch::autograd::create_gradient_edge(y, node);
        }
        *output = new at::Tensor(std::move(y));
        return 0;
    } catch (const std::exception& e) {
        std::snprintf(err, err_len, "%s", e.what());
    } catch (...) {
        std::snprintf(err, err_len, "%s", "unknown C++ exception in the quantization hook");
    }
    if (!owned) {
        release(hook);
    }
    return 1;
}
