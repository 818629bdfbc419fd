using System.Collections.Concurrent;
using System.Diagnostics;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Fuzz;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Fuzz;

/// <summary>
/// Replays each parser's fuzz corpus (tests/Fixtures/fuzz/TARGET: the seeds, what AFL++ found
/// through bench/fuzz/run.sh, and every input that once crashed or hung) plus
/// <see cref="MutantsPerTarget"/> deterministic mutants of it, through the same targets the AFL++
/// harness runs. For every input: only <see cref="BadInputFormatException"/> may escape; no input
/// takes more than <see cref="MaxInputTime"/> (a hang guard, not a speed test); and no input makes
/// the parser allocate more than <see cref="MaxAllocatedBytes"/> (the corpus and mutants are at most
/// 64 KiB, so more would be a size taken from the bytes, not from the input).
/// </summary>
public class FuzzReplayTests(ITestOutputHelper output)
{
    public const int MutantsPerTarget = 50_000;
    public const long MaxAllocatedBytes = 16 << 20;
    public static readonly TimeSpan MaxInputTime = TimeSpan.FromSeconds(1);
    // Two workers: the CI machine's two cores. The deadline fails a hung run instead of stalling CI.
    private const int Workers = 2;
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(4);

    public static TheoryData<string> Targets() => new(FuzzTargets.All.Select(t => t.Name));

    private sealed record Outcome(int Index, string What, bool Typed, TimeSpan Time, long Allocated, string? Failure, bool TooSlow);

    [Theory, MemberData(nameof(Targets))]
    public void OnlyTypedErrorsQuicklyAndInBoundedMemory(string name)
    {
        var target = FuzzTargets.Find(name);
        var files = Directory.GetFiles(Repo.Path("tests", "Fixtures", "fuzz", name)).Order(StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(files);
        var corpus = files.Select(File.ReadAllBytes).ToArray();
        var mutator = new Mutator(corpus, seed: name.Length * 7919 + name[0]);
        // JIT and first-use costs (lazy tables, static data) are not an input's time.
        foreach (var seed in corpus) Run(target, -1, "warm-up", seed);

        int total = corpus.Length + MutantsPerTarget;
        var outcomes = new Outcome[total];
        var worker = Task.Run(() => Parallel.For(0, total, new ParallelOptions { MaxDegreeOfParallelism = Workers }, i =>
        {
            bool fromCorpus = i < corpus.Length;
            byte[] input = fromCorpus ? corpus[i] : mutator.Mutant(i - corpus.Length);
            outcomes[i] = Run(target, i, fromCorpus ? Path.GetFileName(files[i]) : $"mutant {i - corpus.Length}", input);
        }));
        Assert.True(worker.Wait(Deadline), $"{name}: the replay did not finish in {Deadline}: a parser loops (see which outcomes are missing)");
        // Over the time limit once can be the machine (a GC pause, a preempted worker on shared cores):
        // such an input runs again alone, and fails only when it is over the limit again.
        foreach (var slow in outcomes.Where(o => o.TooSlow).ToList())
        {
            byte[] input = slow.Index < corpus.Length ? corpus[slow.Index] : mutator.Mutant(slow.Index - corpus.Length);
            outcomes[slow.Index] = Run(target, slow.Index, slow.What + " (run again)", input);
        }

        var failures = outcomes.Where(o => o.Failure is not null).ToList();
        var slowest = outcomes.MaxBy(o => o.Time)!;
        var hungriest = outcomes.MaxBy(o => o.Allocated)!;
        output.WriteLine($"{name}: {corpus.Length} corpus inputs + {MutantsPerTarget} mutants, {outcomes.Count(o => o.Typed)} BadInputFormatException, " +
            $"slowest {slowest.Time.TotalMilliseconds:F1} ms ({slowest.What}), most allocated {hungriest.Allocated / 1024} KiB ({hungriest.What}), " +
            $"mean {outcomes.Average(o => o.Time.TotalMilliseconds):F3} ms");
        Assert.True(failures.Count == 0, $"{name}: {failures.Count} failing inputs; the first:\n" + string.Join("\n", failures.Take(5).Select(f => f.Failure)));
    }

    /// <summary>The corpus stays small enough to keep in git and to replay in seconds: bench/fuzz/run.sh keeps only small entries.</summary>
    [Fact]
    public void TheCorpusIsSmallAndCoversEveryTarget()
    {
        string root = Repo.Path("tests", "Fixtures", "fuzz");
        Assert.Equal(FuzzTargets.All.Select(t => t.Name).Order(StringComparer.Ordinal), Directory.GetDirectories(root).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var files = Directory.GetFiles(root, "*", SearchOption.AllDirectories).Select(f => new FileInfo(f)).ToList();
        Assert.All(files, f => Assert.True(f.Length <= 64 << 10, $"{f.FullName}: {f.Length} bytes (corpus entries are at most 64 KiB)"));
        long total = files.Sum(f => f.Length);
        output.WriteLine($"{files.Count} corpus files, {total / 1024} KiB");
        Assert.True(total <= 2 << 20, $"the fuzz corpus holds {total} bytes (at most 2 MiB)");
    }

    private static Outcome Run(FuzzTarget target, int index, string what, byte[] input)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        bool typed = false;
        string? failure = null;
        try
        {
            target.Run(input);
        }
        catch (BadInputFormatException ex)
        {
            typed = true;
            if (string.IsNullOrWhiteSpace(ex.Message)) failure = "a BadInputFormatException without a message";
        }
        catch (Exception ex)
        {
            failure = $"{ex.GetType().FullName}: {ex.Message}\n{ex.StackTrace}";
        }
        clock.Stop();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        bool tooSlow = failure is null && clock.Elapsed > MaxInputTime;
        if (tooSlow) failure = $"took {clock.Elapsed.TotalMilliseconds:F0} ms";
        if (failure is null && allocated > MaxAllocatedBytes) failure = $"allocated {allocated} bytes";
        if (failure is not null) failure = $"{target.Name} {what} (saved as {Save(target, what, input)}): {failure}";
        return new Outcome(index, what, typed, clock.Elapsed, allocated, failure, tooSlow);
    }

    /// <summary>A failing input as a file, to replay with `dotnet out/fuzz/bin/PSLinuxTrace.Fuzz.dll replay TARGET FILE` and to keep in the corpus once fixed.</summary>
    private static string Save(FuzzTarget target, string what, byte[] input)
    {
        string dir = Path.Combine(Path.GetTempPath(), "pslinuxtrace-fuzz-failures");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, $"{target.Name}-{what.Replace(' ', '-')}-{Convert.ToHexString(System.Security.Cryptography.SHA1.HashData(input))[..12].ToLowerInvariant()}");
        File.WriteAllBytes(path, input);
        return path;
    }
}
