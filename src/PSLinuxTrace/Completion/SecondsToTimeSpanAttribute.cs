using System.Globalization;
using System.Management.Automation;

namespace PSLinuxTrace.Completion;

/// <summary>
/// Lets a TimeSpan parameter take a plain number as seconds (-Interval 5, -Interval 0.5) as well as
/// a TimeSpan or a "hh:mm:ss" string; without it PowerShell would read 5 as five ticks.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class SecondsToTimeSpanAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object value = inputData is PSObject pso ? pso.BaseObject : inputData;
        return value switch
        {
            TimeSpan t => t,
            int i => TimeSpan.FromSeconds(i),
            long l => TimeSpan.FromSeconds(l),
            double d => TimeSpan.FromSeconds(d),
            decimal m => TimeSpan.FromSeconds((double)m),
            string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => TimeSpan.FromSeconds(d),
            string s when TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out var t) => t,
            _ => inputData,
        };
    }
}
