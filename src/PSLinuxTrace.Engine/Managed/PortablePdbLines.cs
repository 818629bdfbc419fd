using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Microsoft.Extensions.Logging;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// Source lines of managed frames from portable PDBs (System.Reflection.Metadata, in the framework): the
/// PDB embedded in the assembly, else the one its CodeView entry names or the .pdb next to it, used only
/// when its id is the one the assembly records (a rebuilt PDB would give wrong lines). Each assembly is
/// opened once per source; one without a PDB costs one look.
/// </summary>
internal sealed class PortablePdbLines(string? sysRoot, ILogger log) : IDisposable
{
    private readonly Dictionary<string, MetadataReaderProvider?> _pdbs = new(StringComparer.Ordinal);

    public (string File, int Line, int? Column)? Find(string assemblyPath, int methodToken, int ilOffset)
    {
        if (!_pdbs.TryGetValue(assemblyPath, out var provider))
            _pdbs[assemblyPath] = provider = Open(assemblyPath);
        if (provider is null) return null;
        try
        {
            var reader = provider.GetMetadataReader();
            var handle = MetadataTokens.MethodDefinitionHandle(methodToken & 0xFFFFFF);
            SequencePoint? best = null;
            foreach (var sp in reader.GetMethodDebugInformation(handle).GetSequencePoints())
            {
                if (sp.IsHidden) continue;
                if (sp.Offset > ilOffset) break;
                best = sp;
            }
            if (best is not { } b) return null;
            return (reader.GetString(reader.GetDocument(b.Document).Name), b.StartLine, b.StartColumn > 0 ? b.StartColumn : null);
        }
        catch (Exception ex) when (ex is BadImageFormatException or ArgumentException or InvalidOperationException)
        {
            log.LogDebug("{Assembly}: unreadable portable PDB ({Message})", assemblyPath, ex.Message);
            return null;
        }
    }

    private MetadataReaderProvider? Open(string assemblyPath)
    {
        string local = Local(assemblyPath);
        if (!File.Exists(local)) return null;
        try
        {
            using var pe = new PEReader(File.OpenRead(local));
            var entries = pe.ReadDebugDirectory();
            if (entries.FirstOrDefault(e => e.Type == DebugDirectoryEntryType.EmbeddedPortablePdb) is { DataSize: > 0 } embedded)
                return pe.ReadEmbeddedPortablePdbDebugDirectoryData(embedded);
            if (entries.FirstOrDefault(e => e.Type == DebugDirectoryEntryType.CodeView) is not { DataSize: > 0 } cv) return null;
            var codeView = pe.ReadCodeViewDebugDirectoryData(cv);
            foreach (string candidate in new[] { Local(codeView.Path), Path.ChangeExtension(local, ".pdb") }.Distinct())
                if (Matching(candidate, codeView.Guid, cv.Stamp) is { } pdb) return pdb;
            return null;
        }
        catch (Exception ex) when (ex is BadImageFormatException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            log.LogDebug("{Assembly}: no portable PDB ({Message})", assemblyPath, ex.Message);
            return null;
        }
    }

    /// <summary>The PDB at <paramref name="path"/> when its id (GUID + stamp) is the assembly's; else null.</summary>
    private static MetadataReaderProvider? Matching(string path, Guid guid, uint stamp)
    {
        if (!File.Exists(path)) return null;
        var provider = MetadataReaderProvider.FromPortablePdbStream(File.OpenRead(path));
        try
        {
            var id = new BlobContentId(provider.GetMetadataReader().DebugMetadataHeader?.Id ?? []);
            if (id.Guid == guid && id.Stamp == stamp) return provider;
        }
        catch (BadImageFormatException) { } // a Windows (non-portable) PDB, or not a PDB at all
        provider.Dispose();
        return null;
    }

    private string Local(string path) =>
        sysRoot is null || !Path.IsPathRooted(path) ? path : Path.Join(sysRoot, path);

    public void Dispose()
    {
        foreach (var p in _pdbs.Values) p?.Dispose();
        _pdbs.Clear();
    }
}
