using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Wire;

/// <summary>
/// The JSON of every object that crosses the pipe, generated at compile time (the tracer process is
/// NativeAOT: no reflection). Result objects carry a one-byte tag saying which type they are; trace
/// events, many thousands a second, have a binary form of their own (<see cref="TraceEventCodec"/>).
/// </summary>
[JsonSourceGenerationOptions(IgnoreReadOnlyProperties = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = false, GenerationMode = JsonSourceGenerationMode.Default)]
[JsonSerializable(typeof(TracerRequest))]
[JsonSerializable(typeof(ErrorInfo))]
[JsonSerializable(typeof(ProcessSnapshot))]
[JsonSerializable(typeof(CapturedProcess))]
internal sealed partial class TracerJsonContext : JsonSerializerContext
{
}

internal static class TracerJson
{
    // The tag of each output type is its index here: append, never reorder (both ends are built together,
    // but a stale tracer next to a new module must fail loudly, not misread).
    private static readonly JsonTypeInfo[] Types =
    [
        TracerJsonContext.Default.ProcessSnapshot,
        TracerJsonContext.Default.CapturedProcess,
    ];

    /// <summary>A tagged output object: one byte of type, then its JSON.</summary>
    public static byte[] EncodeObject(object value)
    {
        for (int tag = 0; tag < Types.Length; tag++)
        {
            if (Types[tag].Type != value.GetType()) continue;
            byte[] json = JsonSerializer.SerializeToUtf8Bytes(value, Types[tag]);
            var payload = new byte[json.Length + 1];
            payload[0] = (byte)tag;
            json.CopyTo(payload, 1);
            return payload;
        }
        throw new InvalidOperationException($"{value.GetType().Name} cannot cross to the user's process: add it to TracerJson.");
    }

    public static object DecodeObject(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 2 || payload[0] >= Types.Length)
            throw new BadInputFormatException($"The tracer process sent an object of unknown type {(payload.Length > 0 ? payload[0] : -1)}: is it from another build of the module?");
        return JsonSerializer.Deserialize(payload[1..], Types[payload[0]])
            ?? throw new BadInputFormatException("The tracer process sent an empty object.");
    }

    public static byte[] Encode(TracerRequest request) => JsonSerializer.SerializeToUtf8Bytes(request, TracerJsonContext.Default.TracerRequest);
    public static TracerRequest DecodeRequest(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, TracerJsonContext.Default.TracerRequest) ?? throw new BadInputFormatException("Empty request.");
    public static byte[] Encode(ErrorInfo error) => JsonSerializer.SerializeToUtf8Bytes(error, TracerJsonContext.Default.ErrorInfo);
    public static ErrorInfo DecodeError(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, TracerJsonContext.Default.ErrorInfo) ?? new ErrorInfo { Type = "Unknown", Message = "The tracer process failed." };
}
