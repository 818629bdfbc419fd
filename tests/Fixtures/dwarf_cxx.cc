// Fixture for the DWARF reader's C++ names: members defined outside their class
// (DW_AT_specification), namespaces, templates and linkage names, inlined at -O2.
#include <cstdio>

namespace dw {

struct Counter {
    int total = 0;
    void add(int v);
    inline int twice() const { return total * 2; }
};

__attribute__((noinline)) void Counter::add(int v)
{
    total += v;
}

template <typename T>
static inline T dw_max(T a, T b)
{
    return a > b ? a : b;
}

__attribute__((noinline)) int run(int n)
{
    Counter c;
    for (int i = 0; i < n; i++)
        c.add(dw_max(i, n - i));
    return c.twice();
}

} // namespace dw

int main(int argc, char **)
{
    std::printf("%d\n", dw::run(argc * 4));
    return 0;
}
