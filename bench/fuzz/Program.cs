using System.Diagnostics;
using PSLinuxTrace.Engine;
using PSLinuxTrace.Fuzz;
using SharpFuzz;

// fuzz TARGET            : under afl-fuzz (SharpFuzz's fork server): inputs run in a child process,
//                          so a stack overflow is reported as a crash instead of ending the server
// replay TARGET PATH...  : runs files (or every file of directories) once each; exit 1 when one escapes
// seeds RAW OUT          : builds the seed corpora under OUT from the raw files make-seeds.sh left in RAW
// list                   : the target names
if (args.Length == 0) return Usage();
switch (args[0])
{
    case "list":
        foreach (var t in FuzzTargets.All) Console.WriteLine($"{t.Name}\t{t.Parser}");
        return 0;
    case "fuzz" when args.Length == 2:
    {
        var target = FuzzTargets.Find(args[1]);
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            try
            {
                target.Run(buffer.ToArray());
            }
            catch (BadInputFormatException)
            {
                // the parser's typed answer to bad bytes: not a finding
            }
        });
        return 0;
    }
    case "replay" when args.Length >= 3:
        return Replay(FuzzTargets.Find(args[1]), args[2..]);
    case "seeds" when args.Length == 3:
        SeedMaker.Make(args[1], args[2]);
        return 0;
    default:
        return Usage();
}

static int Usage()
{
    Console.Error.WriteLine("usage: PSLinuxTrace.Fuzz list | fuzz TARGET | replay TARGET PATH... | seeds RAWDIR OUTDIR");
    return 2;
}

static int Replay(FuzzTarget target, string[] paths)
{
    var files = paths.SelectMany(p => Directory.Exists(p) ? Directory.EnumerateFiles(p) : [p]).Order(StringComparer.Ordinal).ToList();
    int escaped = 0;
    foreach (string file in files)
    {
        var clock = Stopwatch.StartNew();
        string outcome;
        try
        {
            target.Run(File.ReadAllBytes(file));
            outcome = "ok";
        }
        catch (BadInputFormatException ex)
        {
            outcome = "bad-format: " + ex.Message;
        }
        catch (Exception ex)
        {
            escaped++;
            outcome = $"ESCAPED {ex.GetType().FullName}: {ex.Message}\n{ex.StackTrace}";
        }
        Console.WriteLine($"{Path.GetFileName(file)}\t{clock.Elapsed.TotalMilliseconds:F1} ms\t{outcome}");
    }
    Console.WriteLine($"{target.Name}: {files.Count} inputs, {escaped} escaped");
    return escaped == 0 ? 0 : 1;
}
