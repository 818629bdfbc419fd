// SPDX-License-Identifier: GPL-2.0
// Watch-Exec's kernel half: one record per execve/execveat entry (caller, filename, every argv
// string, optionally envp) and one per exit (the result), written to a ring buffer.
//
// Build (the object is committed next to this file, like cilium/ebpf's bpf2go):
//   clang -O2 -g0 -target bpf -c exec.bpf.c -o exec.bpf.o
//
// No libbpf headers: the loader (src/PSLinuxTrace.Engine/Exec/BpfObject.cs) understands legacy
// "maps" definitions and map relocations only. Kernel structure offsets (task_struct.real_parent,
// ...) are not compiled in: the loader resolves them against /sys/kernel/btf/vmlinux and writes
// them into the config map, so the object stays right across kernel versions (CO-RE done by hand).
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))

struct bpf_map_def { u32 type, key_size, value_size, max_entries, map_flags; };
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_RINGBUF 27

// Helper ids from include/uapi/linux/bpf.h (___BPF_FUNC_MAPPER).
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static u64 (*bpf_get_current_uid_gid)(void) = (void *)15;
static long (*bpf_get_current_comm)(void *buf, u32 size) = (void *)16;
static u64 (*bpf_get_current_task)(void) = (void *)35;
static u64 (*bpf_get_current_cgroup_id)(void) = (void *)80;
static u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static long (*bpf_probe_read_user)(void *dst, u32 size, const void *src) = (void *)112;
static long (*bpf_probe_read_kernel)(void *dst, u32 size, const void *src) = (void *)113;
static long (*bpf_probe_read_user_str)(void *dst, u32 size, const void *src) = (void *)114;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, u64 size, u64 flags) = (void *)130;
static long (*bpf_loop)(u32 nr, void *callback, void *ctx, u64 flags) = (void *)181;
static u64 (*bpf_ktime_get_boot_ns)(void) = (void *)125;

#define MAX_ARGS 256          // argv strings read per exec (the issue asks for at least 128)
#define ARGS_CAP 32768        // bytes of argv (and, separately, of envp) per exec
#define PATH_CAP 4096         // PATH_MAX
#define MAX_CPUS 1024

// Flags in exec_event.flags.
#define F_ARGS_TRUNCATED 1    // more than MAX_ARGS strings, or more than ARGS_CAP bytes
#define F_ENV_TRUNCATED 2
#define F_ARGS_FAULT 4        // a pointer could not be read (page not present)
#define F_EXECVEAT 8

#define REC_ENTER 1
#define REC_EXIT 2

// Layout shared with ExecRecord.cs: keep in step.
struct exec_event {
    u32 kind;           // REC_ENTER
    u32 flags;
    u64 boot_ns;        // bpf_ktime_get_boot_ns
    u32 pid, tid, ppid, uid, gid, argc, envc;
    u32 pidns;          // inode number of the caller's active pid namespace
    u64 cgroup_id;
    s32 dirfd;          // execveat only
    u32 at_flags;       // execveat only
    u32 filename_len, args_len, env_len, pad;   // lengths include the NULs
    char comm[16];
    // then: filename, NUL-separated argv, NUL-separated envp
};

struct exit_event {
    u32 kind;           // REC_EXIT
    u32 pid, tid, pad;
    s64 ret;
    u64 boot_ns;
};

// Config (index 0), written by the loader before attaching.
struct config {
    // field offsets from vmlinux BTF (bytes)
    u32 task_real_parent, task_tgid, task_thread_pid;
    u32 pid_level, pid_numbers, upid_size, upid_ns, pidns_inum;
    // filters; 0 = off
    u32 filter_uid_on, filter_uid;
    u32 filter_ppid_on, filter_ppid;
    u32 filter_pidns_on, filter_pidns;
    u32 include_env, pad;
};

// header, filename (PATH_CAP) + argv (2*ARGS_CAP), envp slot, and verifier slack after envp (see read_strings)
#define SCRATCH_SIZE (sizeof(struct exec_event) + PATH_CAP + 2 * ARGS_CAP + 2 * ARGS_CAP + 2 * ARGS_CAP)

struct bpf_map_def SEC("maps") events = { .type = BPF_MAP_TYPE_RINGBUF, .max_entries = 16 << 20 };
struct bpf_map_def SEC("maps") config = { .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = sizeof(struct config), .max_entries = 1 };
// [0] = ring buffer reservation failures, [1] = argv/env reads that faulted
struct bpf_map_def SEC("maps") counters = { .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 2 };
// One scratch record per CPU: tracepoint programs cannot migrate while they run.
struct bpf_map_def SEC("maps") scratch = { .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = SCRATCH_SIZE, .max_entries = MAX_CPUS };

char LICENSE[] SEC("license") = "GPL";

// Context of syscalls/sys_enter_* (tracefs .../format): 8 bytes of common fields,
// int __syscall_nr at 8, then the arguments as 8-byte fields from 16.
struct sys_enter_ctx { u64 common; s32 nr; s32 pad; u64 args[6]; };
struct sys_exit_ctx { u64 common; s32 nr; s32 pad; s64 ret; };

INLINE void count(u32 idx)
{
    u64 *c = bpf_map_lookup_elem(&counters, &idx);
    if (c) __sync_fetch_and_add(c, 1);
}

INLINE u32 read_u32(const void *p) { u32 v = 0; bpf_probe_read_kernel(&v, sizeof v, p); return v; }
INLINE const void *read_ptr(const void *p) { const void *v = 0; bpf_probe_read_kernel(&v, sizeof v, p); return v; }

// task->real_parent->tgid
INLINE u32 parent_tgid(struct config *c, const char *task)
{
    const char *parent = read_ptr(task + c->task_real_parent);
    return parent ? read_u32(parent + c->task_tgid) : 0;
}

// task_active_pid_ns(task)->ns.inum: task->thread_pid->numbers[pid->level].ns->ns.inum
INLINE u32 pidns_inum(struct config *c, const char *task)
{
    const char *pid = read_ptr(task + c->task_thread_pid);
    if (!pid) return 0;
    u32 level = read_u32(pid + c->pid_level);
    if (level > 32) return 0;
    const char *ns = read_ptr(pid + c->pid_numbers + (u64)level * c->upid_size + c->upid_ns);
    return ns ? read_u32(ns + c->pidns_inum) : 0;
}

// Whether the current task passes the kernel-side filters; fills what it computed.
INLINE int passes(struct config *c, u32 *ppid, u32 *pidns, u64 *uidgid)
{
    const char *task = (const char *)bpf_get_current_task();
    *uidgid = bpf_get_current_uid_gid();
    if (c->filter_uid_on && (u32)*uidgid != c->filter_uid) return 0;
    *ppid = parent_tgid(c, task);
    if (c->filter_ppid_on && *ppid != c->filter_ppid) return 0;
    *pidns = pidns_inum(c, task);
    if (c->filter_pidns_on && *pidns != c->filter_pidns) return 0;
    return 1;
}

// What one bpf_loop over a user char*[] carries from string to string. Scalars only: the callback looks
// the scratch record up again (the verifier checks a callback once for any iteration, not 256 times
// per program, which made each entry program take ~230 ms to load).
struct strings {
    const char *const *vec;
    u32 cpu, flen, env, off, n, flags, trunc_flag, stop;
};

// Appends string i of the vector at the record's argv (or envp) area; 1 ends the loop.
static long read_string(u32 i, void *ctx)
{
    struct strings *x = ctx;
    struct exec_event *e = bpf_map_lookup_elem(&scratch, &x->cpu);
    if (!e || i >= MAX_ARGS) return 1;
    const char *s = 0;
    if (bpf_probe_read_user(&s, sizeof s, &x->vec[i]) < 0) { x->flags |= F_ARGS_FAULT; x->stop = 1; return 1; }
    if (!s) { x->stop = 1; return 1; }
    if (x->off >= ARGS_CAP) { x->flags |= x->trunc_flag; x->stop = 1; return 1; }
    // argv follows the filename (flen <= PATH_CAP at run time, masked for the verifier); envp sits at a
    // fixed place after the largest argv. At run time off < ARGS_CAP and room <= ARGS_CAP; the verifier
    // cannot relate the two and sees room up to 2*ARGS_CAP-1: SCRATCH_SIZE leaves slack for that.
    // The empty asm hides what clang knows, so it keeps the masks the verifier needs.
    u32 base = x->flen;
    asm volatile("" : "+r"(base));
    base &= 2 * PATH_CAP - 1;
    if (x->env) base = PATH_CAP + 2 * ARGS_CAP;
    u32 o = x->off;
    asm volatile("" : "+r"(o));
    o &= ARGS_CAP - 1;
    u32 room = ARGS_CAP - o;
    asm volatile("" : "+r"(room));
    room &= 2 * ARGS_CAP - 1;
    char *data = (char *)(e + 1) + base;
    long r = bpf_probe_read_user_str(data + o, room, s);
    if (r < 0) { x->flags |= F_ARGS_FAULT; x->stop = 1; return 1; }
    x->n++;
    x->off += r;
    // The area filled up: the last string may have been cut (a conservative flag).
    if (x->off >= ARGS_CAP) { x->flags |= x->trunc_flag; x->stop = 1; return 1; }
    return 0;
}

// Appends the NUL-terminated strings of a user char*[] to the record's argv area (env: its envp area),
// at most MAX_ARGS strings and ARGS_CAP bytes. Returns the count read; sets trunc_flag when a limit cut
// the list, F_ARGS_FAULT when a pointer or string could not be read.
INLINE u32 read_strings(u32 cpu, u32 flen, u32 env, u32 *len, const char *const *vec, u32 *flags, u32 trunc_flag)
{
    if (!vec) return 0;
    struct strings x = { .vec = vec, .cpu = cpu, .flen = flen, .env = env, .trunc_flag = trunc_flag };
    bpf_loop(MAX_ARGS, read_string, &x, 0);
    // The loop ended by its bound with more pointers possibly left: look at the next one.
    if (!x.stop && x.n == MAX_ARGS) {
        const char *s = 0;
        if (bpf_probe_read_user(&s, sizeof s, &vec[MAX_ARGS]) == 0 && s) x.flags |= trunc_flag;
    }
    if (x.off > ARGS_CAP) { x.off = ARGS_CAP; x.flags |= trunc_flag; }
    *flags |= x.flags;
    *len = x.off;
    return x.n;
}

INLINE int on_enter(const char *filename, const char *const *argv, const char *const *envp, s32 dirfd, u32 at_flags, u32 kindflags)
{
    u32 zero = 0;
    struct config *c = bpf_map_lookup_elem(&config, &zero);
    if (!c) return 0;
    u32 ppid = 0, pidns = 0;
    u64 uidgid = 0;
    if (!passes(c, &ppid, &pidns, &uidgid)) return 0;

    u32 cpu = bpf_get_smp_processor_id();
    struct exec_event *e = bpf_map_lookup_elem(&scratch, &cpu);
    if (!e) return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    e->kind = REC_ENTER;
    e->flags = kindflags;
    e->boot_ns = bpf_ktime_get_boot_ns();
    e->pid = pid_tgid >> 32;
    e->tid = (u32)pid_tgid;
    e->ppid = ppid;
    e->uid = (u32)uidgid;
    e->gid = uidgid >> 32;
    e->pidns = pidns;
    e->cgroup_id = bpf_get_current_cgroup_id();
    e->dirfd = dirfd;
    e->at_flags = at_flags;
    e->env_len = 0;
    e->envc = 0;
    bpf_get_current_comm(e->comm, sizeof e->comm);

    // Record layout: header, filename, argv right after it (so a short exec takes a few hundred
    // bytes of the ring, not a fixed slot), and envp, when asked for, at a fixed place after the
    // largest possible argv.
    char *data = (char *)(e + 1);
    long r = bpf_probe_read_user_str(data, PATH_CAP, filename);
    u32 flen = r > 0 ? (u32)r : 0;
    if (r <= 0) data[0] = 0, flen = 1;
    asm volatile("" : "+r"(flen));
    flen &= 2 * PATH_CAP - 1;          // <= PATH_CAP at run time; a bound for the verifier
    e->filename_len = flen;

    u32 alen = 0, elen = 0, fl = 0;
    e->argc = read_strings(cpu, flen, 0, &alen, argv, &fl, F_ARGS_TRUNCATED);
    if (c->include_env)
        e->envc = read_strings(cpu, flen, 1, &elen, envp, &fl, F_ENV_TRUNCATED);
    e->flags |= fl;
    e->args_len = alen;
    e->env_len = elen;
    if (fl & F_ARGS_FAULT) count(1);

    u64 size;
    if (elen == 0)
        size = sizeof(struct exec_event) + flen + (alen & (2 * ARGS_CAP - 1));
    else
        size = sizeof(struct exec_event) + PATH_CAP + 2 * ARGS_CAP + (elen & (2 * ARGS_CAP - 1));
    asm volatile("" : "+r"(size));   // keep the bound check below for the verifier
    if (size > SCRATCH_SIZE) { count(0); return 0; }   // cannot happen; counted rather than silent
    if (bpf_ringbuf_output(&events, e, size, 0) < 0) count(0);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int enter_execve(struct sys_enter_ctx *ctx)
{
    return on_enter((const char *)ctx->args[0], (const char *const *)ctx->args[1], (const char *const *)ctx->args[2], -100, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int enter_execveat(struct sys_enter_ctx *ctx)
{
    return on_enter((const char *)ctx->args[1], (const char *const *)ctx->args[2], (const char *const *)ctx->args[3],
                    (s32)ctx->args[0], (u32)ctx->args[4], F_EXECVEAT);
}

INLINE int on_exit(struct sys_exit_ctx *ctx)
{
    u32 zero = 0;
    struct config *c = bpf_map_lookup_elem(&config, &zero);
    if (!c) return 0;
    u32 ppid = 0, pidns = 0;
    u64 uidgid = 0;
    if (!passes(c, &ppid, &pidns, &uidgid)) return 0;
    struct exit_event x = {};
    u64 pid_tgid = bpf_get_current_pid_tgid();
    x.kind = REC_EXIT;
    x.pid = pid_tgid >> 32;
    x.tid = (u32)pid_tgid;
    x.ret = ctx->ret;
    x.boot_ns = bpf_ktime_get_boot_ns();
    if (bpf_ringbuf_output(&events, &x, sizeof x, 0) < 0) count(0);
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int exit_execve(struct sys_exit_ctx *ctx) { return on_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_execveat")
int exit_execveat(struct sys_exit_ctx *ctx) { return on_exit(ctx); }
