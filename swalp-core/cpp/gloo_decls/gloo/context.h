// The few declarations of Gloo that c10d's ProcessGroupGloo.hpp needs to
// compile, in place of Gloo's own headers, which the PyTorch wheel does not
// ship (libtorch_cpu carries Gloo itself, compiled in).
//
// ProcessGroupGloo holds Gloo's objects only through pointers, so its size
// and layout, all that swalp's shim relies on when it makes one, do not
// depend on these types' contents. Only what the header's inline code
// names is spelled out: Context::setTimeout, and the rendezvous store's
// interface, which ProcessGroupGloo::GlooStore overrides; swalp never makes a GlooStore (libtorch does, from its own
// definitions).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace gloo {

class Context {
 public:
    void setTimeout(std::chrono::milliseconds timeout);
};

namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport

namespace rendezvous {
class Store {
 public:
    virtual ~Store() = default;
    virtual void set(const std::string& key, const std::vector<char>& data) = 0;
    virtual std::vector<char> get(const std::string& key) = 0;
    virtual void wait(const std::vector<std::string>& keys) = 0;
    virtual void wait(const std::vector<std::string>& keys,
                      const std::chrono::milliseconds& timeout) = 0;
};
}  // namespace rendezvous

}  // namespace gloo
