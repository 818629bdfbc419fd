// Types whose BTF (clang -g -target bpf) seeds the btf corpus; BtfTarget looks these names up.
typedef unsigned int u32;
struct fuzz_ns { u32 inum; int level; };
struct fuzz_node { struct fuzz_node *next, *prev; };
struct fuzz_bits { u32 low : 3, high : 29; };
union fuzz_value { long l; char c[8]; };
enum fuzz_state { FUZZ_IDLE, FUZZ_BUSY = 7 };
struct fuzz_task {
    int pid;
    const volatile struct fuzz_ns ns;
    struct { int flags; union fuzz_value v; } inner;
    struct fuzz_node link;
    enum fuzz_state state;
    char comm[16];
    struct { long anonymous; };
};
struct fuzz_task fuzz_task_instance;
struct fuzz_bits fuzz_bits_instance;
int fuzz_func(struct fuzz_task *t, int n) { return t->pid + n; }
