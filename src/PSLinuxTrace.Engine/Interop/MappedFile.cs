using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

/// <summary>
/// A read-only view of a whole file (mmap) or of a byte array (pinned), handed out as spans.
/// Parsers above it (ELF, cores) bounds-check every offset before they ask for a span; the checks
/// here are the last line, so a bug upstream becomes a BadInputFormatException, never a wild read.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private GCHandle _pin;
    private byte* _base;

    public long Length { get; }

    private MappedFile(MemoryMappedFile map, MemoryMappedViewAccessor view, long length)
    {
        _map = map;
        _view = view;
        Length = length;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + view.PointerOffset;
    }

    private MappedFile(byte[] data)
    {
        _pin = GCHandle.Alloc(data, GCHandleType.Pinned);
        _base = (byte*)_pin.AddrOfPinnedObject();
        Length = data.Length;
    }

    /// <summary>Maps <paramref name="path"/> read-only. Throws FileNotFoundException, UnauthorizedAccessException, BadInputFormatException (empty).</summary>
    public static MappedFile Open(string path) =>
        Open(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None), path);

    /// <summary>Maps the file open in <paramref name="stream"/> (which it then owns; it may have no name left, once unlinked), read-only.</summary>
    public static MappedFile Open(FileStream stream, string name)
    {
        try
        {
            long length = stream.Length;
            if (length == 0) throw new BadInputFormatException($"{name}: the file is empty.");
            var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            try
            {
                return new MappedFile(map, map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read), length);
            }
            catch
            {
                map.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public static MappedFile FromBytes(byte[] data) => new(data);

    /// <summary>The bytes [offset, offset+length); throws BadInputFormatException when out of the file.</summary>
    public ReadOnlySpan<byte> Span(ulong offset, ulong length)
    {
        if (_base == null) throw new ObjectDisposedException(nameof(MappedFile));
        if (offset > (ulong)Length || length > (ulong)Length - offset)
            throw new BadInputFormatException($"Range 0x{offset:x}+0x{length:x} lies outside the file (0x{Length:x} bytes).");
        if (length > int.MaxValue)
            throw new BadInputFormatException($"Range 0x{offset:x}+0x{length:x} is larger than one read can be.");
        return new ReadOnlySpan<byte>(_base + offset, (int)length);
    }

    public void Dispose()
    {
        if (_base == null) return;
        _base = null;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map!.Dispose();
        }
        if (_pin.IsAllocated) _pin.Free();
    }
}
