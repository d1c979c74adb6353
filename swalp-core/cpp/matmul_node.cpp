// The autograd node behind swalp's layers with simulated arithmetic.
//
// `swalp_matmul_apply` computes y = a · b through a Rust callback (which
// multiplies and accumulates in the layer's formats) and, when an operand
// takes part in autograd, attaches a `SwalpMatmulBackward` node whose
// `apply` computes the two gradient products through the same callback:
// dL/da = g · bᵀ (which 1) and dL/db = aᵀ · g (which 2), each in its own
// formats. Like quant_hook.cpp, the node owns one reference to the
// Rust-side hook and releases it with the graph; no Rust symbol is
// referenced at link time.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

extern "C" {
// Computes product `which` (0: x · y, 1: x · yᵀ, 2: xᵀ · y) of `x` and `y`
// (ownership of both passes to Rust). Returns a new tensor owned by the
// caller, or null after writing a message into `err`.
typedef at::Tensor* (*swalp_matmul_fn)(const void* hook, int which, at::Tensor* x, at::Tensor* y,
                                       char* err, size_t err_len);
// Drops one reference to the hook.
typedef void (*swalp_matmul_release_fn)(const void* hook);
}

namespace {

struct MatmulRef {
    const void* hook;
    swalp_matmul_fn matmul;
    swalp_matmul_release_fn release;
    MatmulRef(const void* h, swalp_matmul_fn m, swalp_matmul_release_fn r) : hook(h), matmul(m), release(r) {}
    MatmulRef(const MatmulRef&) = delete;
    MatmulRef& operator=(const MatmulRef&) = delete;
    ~MatmulRef() { release(hook); }

    at::Tensor call(int which, const at::Tensor& x, const at::Tensor& y) const {
        char err[1024] = {0};
        at::Tensor* out = matmul(hook, which, new at::Tensor(x), new at::Tensor(y), err, sizeof err);
        if (out == nullptr) {
            throw std::runtime_error(err);
        }
        at::Tensor result = std::move(*out);
        delete out;
        return result;
    }
};

struct SwalpMatmulBackward : public torch::autograd::Node {
    std::shared_ptr<MatmulRef> hook;
    // The operands' values (detached: the node needs them, not their graphs).
    at::Tensor a;
    at::Tensor b;

    torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
        const at::Tensor& g = grads[0];
        at::Tensor grad_a;
        at::Tensor grad_b;
        if (g.defined()) {
            if (task_should_compute_output(0)) {
                grad_a = hook->call(1, g, b);
            }
            if (task_should_compute_output(1)) {
                grad_b = hook->call(2, a, g);
            }
        }
        return {grad_a, grad_b};
    }

    void release_variables() override {
        a.reset();
        b.reset();
    }

    std::string name() const override { return "SwalpMatmulBackward"; }
};

}  // namespace

// `*output` receives a · b for `a` [M, K] and `b` [K, N], wired into the
// autograd graph when either requires grad and grad mode is on. Takes over
// one reference to `hook` in every case. Returns 0, or 1 after writing a
// message into `err`.
extern "C" int swalp_matmul_apply(const void* hook, swalp_matmul_fn matmul, swalp_matmul_release_fn release,
                                  const at::Tensor* a, const at::Tensor* b, at::Tensor** output, char* err,
                                  size_t err_len) {
    bool owned = false;
    try {
        auto ref = std::make_shared<MatmulRef>(hook, matmul, release);
        owned = true;
        at::Tensor y;
        {
            at::NoGradGuard no_grad;
            y = ref->call(0, a->detach(), b->detach());
        }
        bool needs_grad = a->requires_grad() || b->requires_grad();
        if (needs_grad && at::GradMode::is_enabled()) {
            auto node = std::shared_ptr<SwalpMatmulBackward>(new SwalpMatmulBackward(), torch::autograd::deleteNode);
            node->hook = ref;
            node->a = a->detach();
            node->b = b->detach();
            node->set_next_edges(torch::autograd::collect_next_edges(*a, *b));
            torch::autograd::create_gradient_edge(y, node);
        }
        *output = new at::Tensor(std::move(y));
        return 0;
    } catch (const std::exception& e) {
        std::snprintf(err, err_len, "%s", e.what());
    } catch (...) {
        std::snprintf(err, err_len, "%s", "unknown C++ exception in a matrix product");
    }
    if (!owned) {
        release(hook);
    }
    return 1;
}
