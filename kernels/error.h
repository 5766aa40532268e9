// axfold error handling: one exception type and one checking macro.
//
// Library code reports every failure a user can act on by throwing axfold::Error through AXF_CHECK,
// which records file:line. Apps catch at main, print what(), and return non-zero.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

namespace axfold {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// printf-style formatting into a std::string.
template <class... Args>
std::string strfmt(const char* fmt, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) {
        return std::string(fmt);
    } else {
        int n = std::snprintf(nullptr, 0, fmt, std::forward<Args>(args)...);
        std::string s(n > 0 ? static_cast<size_t>(n) : 0, '\0');
        if (n > 0) std::snprintf(s.data(), s.size() + 1, fmt, std::forward<Args>(args)...);
        return s;
    }
}

[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);

}  // namespace axfold

#define AXF_CHECK(cond, ...)                                                               \
    do {                                                                                   \
        if (!(cond)) ::axfold::throw_error(__FILE__, __LINE__, ::axfold::strfmt(__VA_ARGS__)); \
    } while (0)

#define AXF_FAIL(...) ::axfold::throw_error(__FILE__, __LINE__, ::axfold::strfmt(__VA_ARGS__))
