// SPDX-License-Identifier: GPL-2.0
// Start-SyscallTrace's eBPF engine (-Engine Bpf): the traced tasks never stop. Raw tracepoints on
// sys_enter/sys_exit record each selected system call of a task in the `traced` map; the
// sched_process_fork/exec/exit and signal_deliver tracepoints keep that set and report task events.
// Everything goes to one ring buffer; user space (src/PSLinuxTrace.Engine/Tracing/Bpf) decodes it
// with the same decoder as the ptrace engine.
//
// Build (the object is committed next to this file, like exec.bpf.o):
//   clang -O2 -g0 -target bpf -c syscalls.bpf.c -o syscalls.bpf.o
//
// No libbpf: legacy "maps" definitions and map relocations only (our loader, Bpf/BpfObject.cs).
// Kernel structure offsets come from /sys/kernel/btf/vmlinux through the config map (CO-RE by hand).
// Which arguments to copy, when and how much is decided in user space from the decoder's signatures
// and written to the `syscalls` map, so this program knows no system call by name.
//
// Records (layouts shared with Tracing/Bpf/BpfRecords.cs: keep in step):
//   REC_SYSCALL  a finished (or, at task exit, unfinished) call: number, arguments, result, copies
//   REC_ENTER    copies of input memory taken at entry (paths, written data, argv), when there are any
//   REC_FORK/EXEC/EXIT/SIGNAL  task events
// Every record but REC_ENTER takes the next number of its CPU's sequence: a gap seen in user space is
// a lost record, reported with its count and CPU where it happened. A lost REC_ENTER is flagged in
// its REC_SYSCALL (RF_ENTRY_LOST), so its copies show as unavailable, never as wrong values.
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))
// v &= mask, kept: the empty asm hides what clang knows of v, so it cannot drop a mask it thinks
// useless, and the verifier sees the bound it needs.
#define BOUND(v, mask) do { asm volatile("" : "+r"(v)); (v) &= (mask); } while (0)

struct bpf_map_def { u32 type, key_size, value_size, max_entries, map_flags; };
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_RINGBUF 27
#define BPF_ANY 0
#define BPF_RB_FORCE_WAKEUP 2

// Helper ids from include/uapi/linux/bpf.h (___BPF_FUNC_MAPPER).
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_get_current_comm)(void *buf, u32 size) = (void *)16;
static u64 (*bpf_get_current_task)(void) = (void *)35;
static long (*bpf_probe_read_user)(void *dst, u32 size, const void *src) = (void *)112;
static long (*bpf_probe_read_kernel)(void *dst, u32 size, const void *src) = (void *)113;
static long (*bpf_probe_read_user_str)(void *dst, u32 size, const void *src) = (void *)114;
static long (*bpf_probe_read_kernel_str)(void *dst, u32 size, const void *src) = (void *)115;
static u64 (*bpf_ktime_get_boot_ns)(void) = (void *)125;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, u64 size, u64 flags) = (void *)130;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, u64 size, u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, u64 flags) = (void *)132;
static long (*bpf_loop)(u32 nr, void *callback, void *ctx, u64 flags) = (void *)181;

#define MAX_NR 1024           // syscall numbers the maps hold (x86_64 ends at 469)
#define AREA 65536            // bytes of copies per record (a power of two: offsets are masked with it)
#define AREA_USE (AREA - 64)  // what the copies may fill, so an offset never reaches AREA
#define BUF_MAX 32768         // largest single copy (-StringLimit is capped to it in user space)
#define HDR 128               // room for the largest fixed record part, before the copies
#define BUILD_OFF (HDR + AREA + 2 * BUF_MAX)  // struct build, after the verifier's slack (see put_mem)
#define SCRATCH (BUILD_OFF + 128)
#define ARGV_MAX 32           // argv strings copied (what the decoder shows)
#define PAGE 4096

// ---- records -----------------------------------------------------------------------------------
#define REC_SYSCALL 1
#define REC_ENTER 2
#define REC_FORK 3
#define REC_EXIT 4
#define REC_EXEC 5
#define REC_SIGNAL 6

#define RF_UNFINISHED 1       // REC_SYSCALL: the task exited inside the call (exit_group, killed)
#define RF_ENTRY_LOST 2       // REC_SYSCALL: its REC_ENTER did not fit in the ring buffer
#define RF_COPIES_CUT 4       // the copy area filled up: some copies are missing
#define RF_REPLACED 8         // REC_EXIT: a leader replaced by a non-leader's execve (de_thread), not an exit

struct hdr { u8 kind; u8 flags; u16 cpu; u32 seq; u32 pid; u32 tid; u64 ns; };   // 24 bytes; ns: boot time
struct syscall_rec { struct hdr h; u32 nr; u32 copies; u64 exit_ns; u64 args[6]; s64 ret; };   // 96
struct enter_rec { struct hdr h; u32 nr; u32 copies; };        // 32; h.ns is the call's entry time, its key
struct fork_rec { struct hdr h; u32 child_tid, child_tgid; s32 parent_nr; s32 exit_signal; u64 clone_flags; char comm[16]; };   // 64
struct exit_rec { struct hdr h; s32 exit_code; u32 pad; };     // 32
struct exec_rec { struct hdr h; u32 old_tid; u32 copies; u64 exe_ino; u32 exe_dev; u32 pad; char comm[16]; };   // 64, then the filename copy
struct signal_rec { struct hdr h; s32 sig, code, err, sender_pid; u32 sender_uid, pad; };   // 48

// One copy, followed by its bytes padded to 8: [addr, addr + len) of the tracee (CK_MEM, CK_STR), or
// an fd's identity (CK_FD: addr is the fd number, AT_FDCWD for the cwd; then struct fdid's inode and
// device, inode 0 when there is no such fd).
struct copy { u64 addr; u32 len; u8 arg; u8 kind; u8 flags; u8 pad; };   // 16
#define CK_MEM 1
#define CK_STR 2
#define CK_FD 3
#define CF_FAULT 1            // the read failed after len bytes (page absent or address bad)
#define CF_CUT 2              // a string longer than its limit, or a copy the area could not hold whole
#define CF_EXIT 4             // taken at syscall exit

// ---- what to copy, per syscall number (written by user space) ------------------------------------
struct arg_spec { u8 kind; u8 when; u8 len_arg; u8 flags; u32 max; };
#define AK_NONE 0
#define AK_STR 1              // a NUL-terminated string of at most max bytes
#define AK_BUF 2              // max bytes
#define AK_BUF_ARG 3          // min(args[len_arg], max) bytes
#define AK_BUF_RET 4          // min(return value, max) bytes, at exit
#define AK_ARGV 5             // a char *[] (ARGV_MAX pointers) and each string (max bytes)
#define AK_FD 6               // the identity of the fd in the argument
#define W_ENTRY 0
#define W_EXIT 1
#define AF_OUTPUT 1           // written by the kernel: copied at exit, and only when the call succeeded
struct sc_spec { u32 flags; u32 pad; struct arg_spec arg[6]; };   // 56
#define SC_SELECTED 1         // report it
#define SC_TRACK 2            // keep it in flight even when not reported (the fork record needs clone's flags)
#define SC_RET_FD 4           // returns an fd: copy its identity
#define SC_NO_RETRY 8         // replaces the memory on success (execve): no second try at exit
#define SC_ENTRY_COPIES 16    // has memory to copy at entry (so a REC_ENTER)
#define SC_EXIT_COPIES 32     // has memory to copy at exit
#define SC_FDS 64             // has fd arguments

struct config {
    // offsets from vmlinux BTF (bytes)
    u32 task_pid, task_tgid, task_exit_code, task_exit_signal, task_files, task_fs, task_signal;
    u32 signal_group_exec_task;   // 0 when the kernel has no such field
    u32 files_fdt, fdt_max_fds, fdt_fd, file_inode, inode_ino, inode_sb, sb_dev;
    u32 fs_pwd, path_dentry, dentry_inode, bprm_file, bprm_filename;
    // what to do
    u32 follow, failed_only, summary;
    s32 nr_execve, nr_execveat, nr_clone, nr_clone3, nr_fork, nr_vfork;
    u32 task_mm, mm_arg_start;   // mm_struct: arg_start, arg_end, env_start, env_end follow each other
    u32 pad;
};   // 128

struct task { u32 tgid; u32 flags; };
#define TF_SUPPRESS 1         // the launcher shell before its execve of the program: not reported

// An fd's identity: what its inode was at the call, so user space shows a path only for that file.
struct fdid { u64 ino; u32 dev; s32 fd; };   // 16; dev in the kernel's encoding (MAJOR << 20 | MINOR)
struct inflight { u64 enter_ns; u64 args[6]; u32 nr; u32 flags; struct fdid fds[2]; u32 retry; u32 nfd; };   // 104
#define IF_SELECTED 1
#define IF_ENTRY_LOST 2
#define IF_ACTIVE 4           // a call is in flight; the slot itself stays until the task exits

struct totals { u64 calls, errors, ns; };

// counters (per CPU)
#define C_LOST 0              // records the ring buffer could not take (also seen as sequence gaps)
#define C_ENTRY_LOST 1        // REC_ENTER records it could not take
#define C_TRACED_FULL 2       // new tasks not followed: the traced map was full
#define C_INFLIGHT_FULL 3     // calls not reported: the inflight map was full
#define C_FAULTS 4            // copies that faulted at entry and at exit
#define C_COUNT 8

struct bpf_map_def SEC("maps") events = { .type = BPF_MAP_TYPE_RINGBUF, .max_entries = 16 << 20 };
struct bpf_map_def SEC("maps") config = { .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = sizeof(struct config), .max_entries = 1 };
struct bpf_map_def SEC("maps") syscalls = { .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = sizeof(struct sc_spec), .max_entries = MAX_NR };
struct bpf_map_def SEC("maps") traced = { .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = sizeof(struct task), .max_entries = 32768 };
struct bpf_map_def SEC("maps") inflight = { .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = sizeof(struct inflight), .max_entries = 32768 };
struct bpf_map_def SEC("maps") seqs = { .type = BPF_MAP_TYPE_PERCPU_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 1 };
struct bpf_map_def SEC("maps") counters = { .type = BPF_MAP_TYPE_PERCPU_ARRAY, .key_size = 4, .value_size = 8, .max_entries = C_COUNT };
struct bpf_map_def SEC("maps") totals = { .type = BPF_MAP_TYPE_PERCPU_ARRAY, .key_size = 4, .value_size = sizeof(struct totals), .max_entries = MAX_NR };
// One record being built per CPU (the programs run with preemption off, so a CPU builds one at a time).
struct bpf_map_def SEC("maps") scratch = { .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = SCRATCH, .max_entries = 1024 };

char LICENSE[] SEC("license") = "GPL";

struct raw_args { u64 args[4]; };

// area + x, with x bounded to the copy area for the verifier.
INLINE char *at_off(char *area, u32 x)
{
    BOUND(x, AREA - 1);
    return area + x;
}

INLINE void count(u32 idx)
{
    u64 *c = bpf_map_lookup_elem(&counters, &idx);
    if (c) *c += 1;
}

INLINE u64 rd64(const void *p) { u64 v = 0; bpf_probe_read_kernel(&v, sizeof v, p); return v; }
INLINE u32 rd32(const void *p) { u32 v = 0; bpf_probe_read_kernel(&v, sizeof v, p); return v; }
INLINE const char *rdptr(const void *p) { return (const char *)rd64(p); }

INLINE struct config *cfg(void)
{
    u32 zero = 0;
    return bpf_map_lookup_elem(&config, &zero);
}

INLINE char *scratch_area(void)
{
    u32 cpu = bpf_get_smp_processor_id();
    return bpf_map_lookup_elem(&scratch, &cpu);
}

/// Numbers the record, then hands it to the ring buffer; a record that does not fit is counted.
INLINE void emit(char *rec, u64 size, u64 flags)
{
    struct hdr *h = (struct hdr *)rec;
    u32 zero = 0;
    u64 *seq = bpf_map_lookup_elem(&seqs, &zero);
    if (!seq) return;
    *seq += 1;
    h->seq = (u32)*seq;
    h->cpu = bpf_get_smp_processor_id();
    asm volatile("" : "+r"(size));
    if (size > SCRATCH) return;
    if (bpf_ringbuf_output(&events, rec, size, flags) < 0) count(C_LOST);
}

INLINE void inode_id(struct config *c, const char *inode, struct fdid *id)
{
    id->ino = inode ? rd64(inode + c->inode_ino) : 0;
    const char *sb = inode ? rdptr(inode + c->inode_sb) : 0;
    id->dev = sb ? rd32(sb + c->sb_dev) : 0;
}

// The identity of an fd of the current task (AT_FDCWD: its cwd); inode 0 when there is none.
INLINE void fd_identity(struct config *c, s32 fd, struct fdid *id)
{
    const char *task = (const char *)bpf_get_current_task();
    const char *inode = 0;
    id->fd = fd;
    if (fd == -100) {
        const char *fs = rdptr(task + c->task_fs);
        const char *dentry = fs ? rdptr(fs + c->fs_pwd + c->path_dentry) : 0;
        inode = dentry ? rdptr(dentry + c->dentry_inode) : 0;
    } else if (fd >= 0) {
        const char *files = rdptr(task + c->task_files);
        const char *fdt = files ? rdptr(files + c->files_fdt) : 0;
        if (fdt && (u32)fd < rd32(fdt + c->fdt_max_fds)) {
            const char *fdarr = rdptr(fdt + c->fdt_fd);
            const char *file = fdarr ? rdptr(fdarr + (u64)fd * 8) : 0;
            inode = file ? rdptr(file + c->file_inode) : 0;
        }
    }
    inode_id(c, inode, id);
}

INLINE u32 put_fd(char *area, u32 off, struct fdid *id, u8 arg, u8 flags)
{
    if (off > AREA_USE - 32) return off;
    struct copy *cp = (struct copy *)at_off(area, off);
    cp->addr = (u64)(s64)id->fd;
    cp->len = 16;
    cp->arg = arg;
    cp->kind = CK_FD;
    cp->flags = flags;
    cp->pad = 0;
    struct fdid *d = (struct fdid *)at_off(area, off + 16);
    d->ino = id->ino;
    d->dev = id->dev;
    d->fd = id->fd;
    return off + 32;
}

// Copies up to `want` bytes of user memory at addr as one copy. When the whole read faults, it keeps
// what it can read up to the end of the first page, and the rest when that reads (else CF_FAULT). Offsets are masked with
// AREA - 1 and sizes with 2 * BUF_MAX - 1: at run time they stay inside AREA_USE, and the masks let
// the verifier prove every write stays inside the scratch value (SCRATCH leaves the slack).
INLINE u32 put_mem(char *area, u32 off, u64 addr, u32 want, u8 arg, u8 flags, u32 *faulted)
{
    if (off > AREA_USE - 24) { *faulted |= 0x100; return off; }
    u32 room = AREA_USE - 16 - off;
    if (want > BUF_MAX) want = BUF_MAX;
    u32 n = want < room ? want : room;
    if (n < want) flags |= CF_CUT;
    struct copy *cp = (struct copy *)at_off(area, off);
    u32 doff = off + 16;
    BOUND(doff, AREA - 1);
    u32 sz = n;
    BOUND(sz, 2 * BUF_MAX - 1);
    u32 got = n;
    if (sz && bpf_probe_read_user(area + doff, sz, (const void *)addr) < 0) {
        // Keep what lies before the first page that fails: up to the page end, then the rest.
        u32 first = PAGE - (addr & (PAGE - 1));
        if (first > n) first = n;
        BOUND(first, 2 * PAGE - 1);
        got = 0;
        if (bpf_probe_read_user(area + doff, first, (const void *)addr) == 0) {
            got = first;
            u32 rest = n - first, at = doff + first;
            BOUND(rest, 2 * BUF_MAX - 1);
            BOUND(at, AREA - 1);
            if (rest && bpf_probe_read_user(area + at, rest, (const void *)(addr + first)) == 0) got = n;
        }
        if (got < n) { flags |= CF_FAULT; *faulted |= 1; }
    }
    cp->addr = addr;
    cp->len = got;
    cp->arg = arg;
    cp->kind = CK_MEM;
    cp->flags = flags;
    cp->pad = 0;
    return off + 16 + ((got + 7) & ~7u);
}

// Copies a NUL-terminated string of at most max bytes. The read asks for max + 1, so a string of
// exactly max bytes is told apart from a longer one (CF_CUT), as the ptrace engine's reader does.
INLINE u32 put_str(char *area, u32 off, u64 addr, u32 max, u8 arg, u8 flags, u32 *faulted)
{
    if (off > AREA_USE - 24) { *faulted |= 0x100; return off; }
    u32 room = AREA_USE - 16 - off;
    u32 want = max + 1;
    if (want > BUF_MAX) want = BUF_MAX;
    u32 n = want < room ? want : room;
    struct copy *cp = (struct copy *)at_off(area, off);
    u32 doff = off + 16;
    BOUND(doff, AREA - 1);
    u32 sz = n;
    BOUND(sz, 2 * BUF_MAX - 1);
    long r = sz ? bpf_probe_read_user_str(area + doff, sz, (const void *)addr) : 0;
    u32 got;
    if (r < 0) { got = 0; flags |= CF_FAULT; *faulted |= 1; }
    else if ((u32)r >= n && n > 0) { got = n - 1; flags |= CF_CUT; }   // no NUL within the limit
    else got = (u32)r;                                                 // includes the NUL
    cp->addr = addr;
    cp->len = got;
    cp->arg = arg;
    cp->kind = CK_STR;
    cp->flags = flags;
    cp->pad = 0;
    return off + 16 + ((got + 7) & ~7u);
}

INLINE int is_error(s64 ret) { return ret < 0 && ret >= -4095; }

INLINE int is_mem_kind(u8 kind) { return kind >= AK_STR && kind <= AK_ARGV; }

// ---- copies, one argument per bpf_loop iteration ------------------------------------------------
// The record being built and what remains to copy live in the scratch value, memory the verifier
// does not follow: each callback is then verified as one unit that any iteration may run, instead of
// once per combination of the paths earlier copies took (which overflows the verifier's budget).
struct build {
    u64 args[6];
    s64 ret;
    u32 nr, off, faulted, retry_in, retry_out, exit, area;
    u32 argv_at, argv_n, argv_max;   // the argv being copied: its pointer array at area + argv_at
    u8 argv_arg, argv_flags, pad[2];
};

INLINE struct build *build_of(char *s) { return (struct build *)(s + BUILD_OFF); }

INLINE char *area_of(char *s, struct build *b)
{
    u32 a = b->area;
    BOUND(a, HDR - 1);
    return s + a;
}

static int copy_argv_string(u32 index, void *unused)
{
    u32 i = index;
    BOUND(i, ARGV_MAX - 1);
    char *s = scratch_area();
    if (!s) return 1;
    struct build *b = build_of(s);
    if (i >= b->argv_n || i >= ARGV_MAX) return 1;
    char *area = area_of(s, b);
    u64 p = *(u64 *)at_off(area, b->argv_at + i * 8);
    if (!p) return 1;
    u32 f = 0;
    b->off = put_str(area, b->off, p, b->argv_max, b->argv_arg, b->argv_flags, &f);
    b->faulted |= f;
    b->retry_out |= (f & 1) << (b->argv_arg & 7);
    return 0;
}

// Whether argument i is copied now: entry copies at entry; at exit the exit copies (outputs only
// when the call succeeded) and the entry copies that faulted, for a second try.
INLINE int copy_now(struct build *b, struct arg_spec *a, u32 i)
{
    if (!b->exit) return a->when == W_ENTRY;
    if ((b->retry_in >> i) & 1) return 1;
    return a->when == W_EXIT && (!is_error(b->ret) || !(a->flags & AF_OUTPUT));
}

static int copy_arg(u32 index, void *unused)
{
    u32 i = index;
    BOUND(i, 7);
    char *s = scratch_area();
    if (!s || i >= 6) return 1;
    struct build *b = build_of(s);
    u32 nr = b->nr & (MAX_NR - 1);
    struct sc_spec *sp = bpf_map_lookup_elem(&syscalls, &nr);
    if (!sp) return 1;
    struct arg_spec *a = &sp->arg[i];
    u64 v = b->args[i];
    if (!is_mem_kind(a->kind) || !v || !copy_now(b, a, i)) return 0;   // NULL: the decoder shows it unread
    char *area = area_of(s, b);
    u8 flags = b->exit ? CF_EXIT : 0;
    u32 f = 0, off = b->off;
    switch (a->kind) {
    case AK_STR: off = put_str(area, off, v, a->max, i, flags, &f); break;
    case AK_BUF: off = put_mem(area, off, v, a->max, i, flags, &f); break;
    case AK_BUF_ARG: {
        u32 la = a->len_arg;
        BOUND(la, 7);   // user space writes 0-5; 6 and 7 would read ret and nr, still inside struct build
        u64 len = b->args[la];
        if ((s64)len > 0) off = put_mem(area, off, v, len < a->max ? (u32)len : a->max, i, flags, &f);
        break;
    }
    case AK_BUF_RET:
        if (b->ret > 0) off = put_mem(area, off, v, (u64)b->ret < a->max ? (u32)b->ret : a->max, i, flags, &f);
        break;
    case AK_ARGV:
        off = put_mem(area, off, v, ARGV_MAX * 8, i, flags, &f);
        if (off != b->off) {
            struct copy *cp = (struct copy *)at_off(area, b->off);
            b->argv_at = b->off + 16;
            b->argv_n = cp->len / 8;
            b->argv_max = a->max;
            b->argv_arg = i;
            b->argv_flags = flags;
        }
        break;
    }
    b->off = off;
    b->faulted |= f;
    b->retry_out |= (f & 1) << i;
    if (a->kind == AK_ARGV && b->argv_n) bpf_loop(ARGV_MAX, copy_argv_string, 0, 0);
    b->argv_n = 0;
    return 0;
}

/// Copies the arguments of call nr that are due (entry or exit) behind the record at s + area; returns the new offset.
INLINE u32 copy_args(char *s, u32 area, u32 off, u32 nr, u64 *args, s64 ret, u32 exit, u32 retry_in, u32 *retry_out, u32 *faulted)
{
    struct build *b = build_of(s);
    for (u32 i = 0; i < 6; i++) b->args[i] = args[i];
    b->ret = ret;
    b->nr = nr;
    b->off = off;
    b->faulted = 0;
    b->retry_in = retry_in;
    b->retry_out = 0;
    b->exit = exit;
    b->area = area;
    b->argv_n = 0;
    bpf_loop(6, copy_arg, 0, 0);
    *retry_out = b->retry_out;
    *faulted = b->faulted;
    u32 o = b->off;
    BOUND(o, AREA - 1);
    return o;
}

// ---- syscall entry and exit --------------------------------------------------------------------

// x86_64 struct pt_regs from r10 (offset 56) to di (offset 112): the argument registers.
struct regs_args { u64 r10, r9, r8, ax, cx, dx, si, di; };

SEC("raw_tracepoint/sys_enter")
int sys_enter(struct raw_args *ctx)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct task *t = bpf_map_lookup_elem(&traced, &tid);
    if (!t) return 0;
    struct config *c = cfg();
    if (!c) return 0;
    s64 nr = (s64)ctx->args[1];
    if (t->flags & TF_SUPPRESS) {
        if (nr != c->nr_execve && nr != c->nr_execveat) return 0;
        t->flags &= ~TF_SUPPRESS;
    }
    if ((u64)nr >= MAX_NR) return 0;
    u32 n = (u32)nr;
    struct sc_spec *sp = bpf_map_lookup_elem(&syscalls, &n);
    if (!sp || !(sp->flags & (SC_SELECTED | SC_TRACK))) return 0;

    // The task's slot, written in place: an update and a delete per call cost more than the rest.
    struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
    if (!in) {
        struct inflight zero = {};
        if (bpf_map_update_elem(&inflight, &tid, &zero, BPF_ANY) < 0) { count(C_INFLIGHT_FULL); return 0; }
        in = bpf_map_lookup_elem(&inflight, &tid);
        if (!in) return 0;
    }
    in->enter_ns = bpf_ktime_get_boot_ns();
    in->nr = n;
    in->nfd = 0;
    in->retry = 0;
    struct regs_args ra = {};
    bpf_probe_read_kernel(&ra, sizeof ra, (const char *)ctx->args[0] + 56);
    in->args[0] = ra.di; in->args[1] = ra.si; in->args[2] = ra.dx;
    in->args[3] = ra.r10; in->args[4] = ra.r8; in->args[5] = ra.r9;
    in->flags = IF_ACTIVE;
    if (!(sp->flags & SC_SELECTED)) return 0;
    in->flags = IF_ACTIVE | IF_SELECTED;
    if (sp->flags & SC_FDS) {
        for (u32 i = 0; i < 6; i++) {
            if (sp->arg[i].kind != AK_FD || in->nfd >= 2) continue;
            fd_identity(c, (s32)in->args[i], &in->fds[in->nfd & 1]);
            in->nfd++;
        }
    }
    if (!(sp->flags & SC_ENTRY_COPIES)) return 0;
    char *s = scratch_area();
    if (!s) return 0;
    struct enter_rec *r = (struct enter_rec *)s;
    r->h.kind = REC_ENTER;
    r->h.flags = 0;
    r->h.pid = bpf_get_current_pid_tgid() >> 32;
    r->h.tid = tid;
    r->h.ns = in->enter_ns;
    r->nr = n;
    u32 faulted = 0, retry = 0;
    u32 off = copy_args(s, sizeof(struct enter_rec), 0, n, in->args, 0, 0, 0, &retry, &faulted);
    in->retry = retry;
    r->h.flags = ((faulted >> 8) & 1) * RF_COPIES_CUT;
    r->copies = off;
    // REC_ENTER takes no sequence number: its loss is flagged in the call's own record.
    BOUND(off, AREA - 1);
    u64 size = sizeof(struct enter_rec) + off;
    r->h.seq = 0;
    r->h.cpu = bpf_get_smp_processor_id();
    if (bpf_ringbuf_output(&events, s, size, 0) < 0) { in->flags |= IF_ENTRY_LOST; count(C_ENTRY_LOST); }
    return 0;
}

INLINE void add_totals(u32 nr, int failed, u64 ns)
{
    struct totals *tt = bpf_map_lookup_elem(&totals, &nr);
    if (!tt) return;
    tt->calls += 1;
    tt->errors += failed ? 1 : 0;
    tt->ns += ns;
}

// Builds and emits the REC_SYSCALL of a finished call (or, with RF_UNFINISHED, of one the task exited in).
INLINE u32 next_seq(void)
{
    u32 zero = 0;
    u64 *seq = bpf_map_lookup_elem(&seqs, &zero);
    if (!seq) return 0;
    *seq += 1;
    return (u32)*seq;
}

INLINE void fill_call(struct syscall_rec *r, struct inflight *e, u32 tid, u32 nr, s64 ret, u8 rflags, u64 now)
{
    r->h.kind = REC_SYSCALL;
    r->h.flags = rflags | (e->flags & IF_ENTRY_LOST ? RF_ENTRY_LOST : 0);
    r->h.pid = bpf_get_current_pid_tgid() >> 32;
    r->h.tid = tid;
    r->h.ns = e->enter_ns;
    r->nr = nr;
    r->copies = 0;
    r->exit_ns = now;
    for (u32 i = 0; i < 6; i++) r->args[i] = e->args[i];
    r->ret = ret;
}

INLINE void report_call(struct config *c, struct inflight *e, u32 tid, s64 ret, u8 rflags, u64 now)
{
    u32 nr = e->nr & (MAX_NR - 1);
    struct sc_spec *sp = bpf_map_lookup_elem(&syscalls, &nr);
    if (!sp) return;
    u32 retry = (sp->flags & SC_NO_RETRY) && !is_error(ret) ? 0 : e->retry;
    if (!e->nfd && !retry && !(sp->flags & (SC_RET_FD | SC_EXIT_COPIES))) {
        // Nothing to copy (getpid, most calls): straight into the ring, numbered as emit() numbers.
        u32 seq = next_seq();
        struct syscall_rec *q = bpf_ringbuf_reserve(&events, sizeof(struct syscall_rec), 0);
        if (!q) { count(C_LOST); return; }
        fill_call(q, e, tid, nr, ret, rflags, now);
        q->h.seq = seq;
        q->h.cpu = bpf_get_smp_processor_id();
        bpf_ringbuf_submit(q, rflags & RF_UNFINISHED ? BPF_RB_FORCE_WAKEUP : 0);
        return;
    }
    char *s = scratch_area();
    if (!s) return;
    struct syscall_rec *r = (struct syscall_rec *)s;
    char *area = s + sizeof(struct syscall_rec);
    u32 off = 0, faulted = 0;
    fill_call(r, e, tid, nr, ret, rflags, now);
    for (u32 k = 0; k < 2; k++)
        if (k < e->nfd) off = put_fd(area, off, &e->fds[k], 0, 0);
    if (!(rflags & RF_UNFINISHED)) {
        if ((sp->flags & SC_RET_FD) && !is_error(ret) && ret >= 0) {
            struct fdid id = {};
            fd_identity(c, (s32)ret, &id);
            off = put_fd(area, off, &id, 6, CF_EXIT);
        }
        // A call that replaces the memory (execve) is retried only when it failed and so replaced nothing.
        if (retry || (sp->flags & SC_EXIT_COPIES)) {
            u32 refaulted = 0;
            off = copy_args(s, sizeof(struct syscall_rec), off, nr, e->args, ret, 1, retry, &refaulted, &faulted);
            if (refaulted & retry) count(C_FAULTS);
        }
    }
    r->h.flags |= ((faulted >> 8) & 1) * RF_COPIES_CUT;
    r->copies = off;
    BOUND(off, AREA - 1);
    emit(s, sizeof(struct syscall_rec) + off, rflags & RF_UNFINISHED ? BPF_RB_FORCE_WAKEUP : 0);
}

SEC("raw_tracepoint/sys_exit")
int sys_exit(struct raw_args *ctx)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct inflight *e = bpf_map_lookup_elem(&inflight, &tid);
    // Not traced, or no call in flight: it began before the task was traced (a new child's clone return).
    if (!e || !(e->flags & IF_ACTIVE)) return 0;
    u32 flags = e->flags;
    e->flags = 0;
    if (!(flags & IF_SELECTED)) return 0;
    struct config *c = cfg();
    if (!c) return 0;
    s64 ret = (s64)ctx->args[1];
    if (c->failed_only && !is_error(ret)) return 0;
    u64 now = bpf_ktime_get_boot_ns();
    if (c->summary) { add_totals(e->nr, is_error(ret), now - e->enter_ns); return 0; }
    e->flags = flags;   // for report_call (IF_ENTRY_LOST); nothing else runs on this task meanwhile
    report_call(c, e, tid, ret, 0, now);
    e->flags = 0;
    return 0;
}

// ---- task events -------------------------------------------------------------------------------

SEC("raw_tracepoint/sched_process_fork")
int on_fork(struct raw_args *ctx)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = (u32)pt;
    struct task *t = bpf_map_lookup_elem(&traced, &tid);
    if (!t) return 0;
    struct config *c = cfg();
    if (!c || !c->follow) return 0;
    const char *child = (const char *)ctx->args[1];
    u32 ctid = rd32(child + c->task_pid), ctgid = rd32(child + c->task_tgid);
    struct task nt = { .tgid = ctgid, .flags = t->flags };
    if (bpf_map_update_elem(&traced, &ctid, &nt, BPF_ANY) < 0) { count(C_TRACED_FULL); return 0; }
    struct fork_rec r = {};
    r.h.kind = REC_FORK;
    r.h.pid = pt >> 32;
    r.h.tid = tid;
    r.h.ns = bpf_ktime_get_boot_ns();
    r.child_tid = ctid;
    r.child_tgid = ctgid;
    r.exit_signal = (s32)rd32(child + c->task_exit_signal);
    r.parent_nr = -1;
    struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
    if (in && (in->flags & IF_ACTIVE)) {
        r.parent_nr = (s32)in->nr;
        if (r.parent_nr == c->nr_clone) r.clone_flags = in->args[0];
        else if (r.parent_nr == c->nr_clone3 && in->args[0]) bpf_probe_read_user(&r.clone_flags, 8, (const void *)in->args[0]);
    }
    if (t->flags & TF_SUPPRESS) return 0;   // the launcher shell forks nothing before its execve
    bpf_get_current_comm(r.comm, sizeof r.comm);
    emit((char *)&r, sizeof r, 0);
    return 0;
}

SEC("raw_tracepoint/sched_process_exec")
int on_exec(struct raw_args *ctx)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = (u32)pt, old = (u32)ctx->args[1];
    struct config *c = cfg();
    if (!c) return 0;
    struct task *t = bpf_map_lookup_elem(&traced, &old);
    if (!t) return 0;
    if (old != tid) {
        // A non-leader's execve: the kernel gave it the leader's tid (de_thread). Its state moves with it.
        struct task nt = { .tgid = pt >> 32, .flags = 0 };
        bpf_map_delete_elem(&traced, &old);
        if (bpf_map_update_elem(&traced, &tid, &nt, BPF_ANY) < 0) { count(C_TRACED_FULL); return 0; }
        struct inflight *in = bpf_map_lookup_elem(&inflight, &old);
        if (in) {
            struct inflight moved = *in;
            bpf_map_delete_elem(&inflight, &old);
            bpf_map_update_elem(&inflight, &tid, &moved, BPF_ANY);
        }
    } else {
        t->flags &= ~TF_SUPPRESS;
    }
    char *s = scratch_area();
    if (!s) return 0;
    struct exec_rec *r = (struct exec_rec *)s;
    r->h.kind = REC_EXEC;
    r->h.flags = 0;
    r->h.pid = pt >> 32;
    r->h.tid = tid;
    r->h.ns = bpf_ktime_get_boot_ns();
    r->old_tid = old;
    bpf_get_current_comm(r->comm, sizeof r->comm);
    const char *bprm = (const char *)ctx->args[2];
    const char *file = rdptr(bprm + c->bprm_file);
    struct fdid exe = {};
    inode_id(c, file ? rdptr(file + c->file_inode) : 0, &exe);
    r->exe_ino = exe.ino;
    r->exe_dev = exe.dev;
    r->pad = 0;
    // The filename as execve was given it (a fallback for /proc/PID/exe once the process is gone).
    const char *name = rdptr(bprm + c->bprm_filename);
    char *area = s + sizeof(struct exec_rec);
    struct copy *cp = (struct copy *)area;
    long n = name ? bpf_probe_read_kernel_str(area + 16, PAGE, name) : -1;
    cp->addr = 0;
    cp->len = n > 0 ? (u32)n : 0;
    cp->arg = 0;
    cp->kind = CK_STR;
    cp->flags = 0;
    cp->pad = 0;
    u32 off = 16 + ((cp->len + 7) & ~7u);
    // When the execve's entry copies faulted (a fork child's first touch of a string literal: fork
    // copies no page table entries of file mappings), its argv and envp are still here, as the kernel
    // copied them to the new stack: mm->arg_start..arg_end and env_start..env_end, present pages.
    struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
    if (in && (in->flags & IF_ACTIVE) && in->retry) {
        const char *mm = rdptr((const char *)bpf_get_current_task() + c->task_mm);
        u64 areas[4] = {};
        if (mm) bpf_probe_read_kernel(areas, sizeof areas, mm + c->mm_arg_start);
        u32 f = 0;
        if (areas[1] > areas[0]) off = put_mem(area, off, areas[0], areas[1] - areas[0] < BUF_MAX ? areas[1] - areas[0] : BUF_MAX, 1, 0, &f);
        if (areas[3] > areas[2]) off = put_mem(area, off, areas[2], areas[3] - areas[2] < BUF_MAX ? areas[3] - areas[2] : BUF_MAX, 2, 0, &f);
    }
    r->copies = off;
    BOUND(off, AREA - 1);
    emit(s, sizeof(struct exec_rec) + off, 0);
    return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int on_exit(struct raw_args *ctx)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = (u32)pt, tgid = pt >> 32;
    struct task *t = bpf_map_lookup_elem(&traced, &tid);
    if (!t) return 0;
    struct config *c = cfg();
    if (!c) return 0;
    const char *task = (const char *)ctx->args[0];
    u64 now = bpf_ktime_get_boot_ns();
    struct inflight *p = bpf_map_lookup_elem(&inflight, &tid);
    if (p) {
        struct inflight e = *p;
        bpf_map_delete_elem(&inflight, &tid);
        if ((e.flags & (IF_ACTIVE | IF_SELECTED)) == (IF_ACTIVE | IF_SELECTED) && !c->failed_only) {
            if (c->summary) add_totals(e.nr, 0, now - e.enter_ns);
            else report_call(c, &e, tid, 0, RF_UNFINISHED, now);
        }
    }
    bpf_map_delete_elem(&traced, &tid);
    struct exit_rec r = {};
    r.h.kind = REC_EXIT;
    r.h.pid = tgid;
    r.h.tid = tid;
    r.h.ns = now;
    r.exit_code = (s32)rd32(task + c->task_exit_code);
    // The leader killed by another thread's execve is replaced, not gone: the ptrace engine never
    // reports its exit either (ptrace(2), "execve(2) under ptrace").
    if (tid == tgid && c->signal_group_exec_task) {
        const char *sig = rdptr(task + c->task_signal);
        const char *execer = sig ? rdptr(sig + c->signal_group_exec_task) : 0;
        if (execer && execer != task) r.h.flags |= RF_REPLACED;
    }
    emit((char *)&r, sizeof r, BPF_RB_FORCE_WAKEUP);
    return 0;
}

SEC("raw_tracepoint/signal_deliver")
int on_signal(struct raw_args *ctx)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = (u32)pt;
    struct task *t = bpf_map_lookup_elem(&traced, &tid);
    if (!t || (t->flags & TF_SUPPRESS)) return 0;
    s32 sig = (s32)ctx->args[0];
    // SIGKILL never stops a ptrace tracee, and every thread "receives" it on a group exit: skip it.
    if (sig == 9) return 0;
    struct signal_rec r = {};
    r.h.kind = REC_SIGNAL;
    r.h.pid = pt >> 32;
    r.h.tid = tid;
    r.h.ns = bpf_ktime_get_boot_ns();
    r.sig = sig;
    // struct kernel_siginfo: si_signo, si_errno, si_code, then (kill/sigchld) si_pid, si_uid at 16.
    // SEND_SIG_NOINFO (0) and SEND_SIG_PRIV (1) are not pointers.
    const char *info = (const char *)ctx->args[1];
    if ((u64)info > PAGE) {
        s32 v[6] = {};
        bpf_probe_read_kernel(v, sizeof v, info);
        r.err = v[1];
        r.code = v[2];
        r.sender_pid = v[4];
        r.sender_uid = (u32)v[5];
    }
    emit((char *)&r, sizeof r, 0);
    return 0;
}
