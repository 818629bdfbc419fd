// A small BPF object (legacy "maps", license, tracepoint and raw tracepoint programs, a .text
// callback through bpf_loop) that seeds the bpfobj corpus. Built with -g0 and with -g (BTF).
typedef unsigned int u32;
typedef unsigned long long u64;
#define SEC(name) __attribute__((section(name), used))
struct bpf_map_def { u32 type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps") counts = { .type = 2, .key_size = 4, .value_size = 8, .max_entries = 4 };
struct bpf_map_def SEC("maps") events = { .type = 27, .max_entries = 1 << 12 };
char LICENSE[] SEC("license") = "GPL";
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_loop)(u32 n, void *fn, void *ctx, u64 flags) = (void *)181;

static __attribute__((noinline)) long step(u32 i, void *ctx)
{
    u32 key = i & 3;
    u64 *v = bpf_map_lookup_elem(&counts, &key);
    if (v) *v += 1;
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
    bpf_loop(4, step, ctx, 0);
    return 0;
}

SEC("raw_tracepoint/sys_enter")
int on_enter(void *ctx)
{
    u32 key = 0;
    u64 *v = bpf_map_lookup_elem(&counts, &key);
    if (v) *v += 2;
    return step(1, ctx);
}
