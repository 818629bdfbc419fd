using System.Text;

namespace PSLinuxTrace.HelpBuilder;

/// <summary>Turns an about_ topic written in markdown into the plain text Get-Help shows.</summary>
internal static class AboutTopic
{
    public static string ToHelpText(string markdown)
    {
        var sb = new StringBuilder();
        bool inCode = false, frontMatter = false;
        string[] lines = markdown.Replace("\r\n", "\n").Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if (i == 0 && line.Trim() == "---") { frontMatter = true; continue; }
            if (frontMatter) { if (line.Trim() == "---") frontMatter = false; continue; }
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal)) { inCode = !inCode; continue; }
            if (inCode) { sb.Append("    ").AppendLine(line); continue; }
            if (line.StartsWith("# ", StringComparison.Ordinal)) { sb.AppendLine("TOPIC").Append("    ").AppendLine(line[2..].Trim().ToLowerInvariant()); continue; }
            if (line.StartsWith("## ", StringComparison.Ordinal)) { sb.AppendLine().AppendLine(line[3..].Trim().ToUpperInvariant()); continue; }
            if (line.StartsWith("### ", StringComparison.Ordinal)) { sb.AppendLine().Append("  ").AppendLine(line[4..].Trim()); continue; }
            sb.AppendLine(line.Length == 0 ? "" : "    " + line.Replace("`", ""));
        }
        return sb.ToString();
    }
}
