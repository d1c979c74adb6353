// The scaled forms of libtorch's element-wise operators that tch does not
// expose: `add(other, alpha)`, `addcmul_(t1, t2, value)` and
// `addcdiv_(t1, t2, value)`. torch.optim's SGD and Adam are written with
// them; computing `a + alpha * b` as two tch operators rounds twice where
// libtorch rounds once, so an optimizer that must equal torch.optim bit for
// bit calls these.
//
// Each returns 0, or 1 after writing libtorch's message into `err`.

#include <ATen/ATen.h>

#include <cstdio>
#include <exception>

namespace {

template <typename F>
int guarded(char* err, size_t err_len, F f) {
    try {
        f();
        return 0;
    } catch (const std::exception& e) {
        std::snprintf(err, err_len, "%s", e.what());
        return 1;
    } catch (...) {
        std::snprintf(err, err_len, "%s", "unknown C++ exception");
        return 1;
    }
}

}  // namespace

// `*out` = a new tensor `self + alpha * other`.
extern "C" int swalp_add_scaled(const at::Tensor* self, const at::Tensor* other, double alpha,
                                at::Tensor** out, char* err, size_t err_len) {
    return guarded(err, err_len, [&] { *out = new at::Tensor(self->add(*other, alpha)); });
}

// `self += alpha * other`.
extern "C" int swalp_add_scaled_(at::Tensor* self, const at::Tensor* other, double alpha,
                                 char* err, size_t err_len) {
    return guarded(err, err_len, [&] { self->add_(*other, alpha); });
}

// `self += value * t1 * t2`.
extern "C" int swalp_addcmul_(at::Tensor* self, const at::Tensor* t1, const at::Tensor* t2,
                              double value, char* err, size_t err_len) {
    return guarded(err, err_len, [&] { self->addcmul_(*t1, *t2, value); });
}

// `self += value * t1 / t2`.
extern "C" int swalp_addcdiv_(at::Tensor* self, const at::Tensor* t1, const at::Tensor* t2,
                              double value, char* err, size_t err_len) {
    return guarded(err, err_len, [&] { self->addcdiv_(*t1, *t2, value); });
}
