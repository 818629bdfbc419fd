using System.Text;
using System.Text.RegularExpressions;

namespace PSLinuxTrace.HelpBuilder;

/// <summary>One cmdlet's help as platyPS markdown (schema 2.0.0) describes it.</summary>
internal sealed class CommandHelp
{
    public string Name = "";
    public string Synopsis = "";
    public string Description = "";
    public List<(string SetName, bool IsDefault, string Syntax)> Syntax = [];
    public List<(string Title, string Code, string Remarks)> Examples = [];
    public List<ParameterHelp> Parameters = [];
    public List<(string Type, string Description)> Inputs = [];
    public List<(string Type, string Description)> Outputs = [];
    public string Notes = "";
    public List<(string Text, string Uri)> Links = [];
    /// <summary>The front matter's "online version:": the page Get-Help -Online opens (empty: none).</summary>
    public string OnlineVersion = "";
}

internal sealed class ParameterHelp
{
    public string Name = "";
    public string Description = "";
    public string Type = "";
    public List<string> ParameterSets = [];
    public List<string> Aliases = [];
    public bool Required;
    public string Position = "Named";
    public string DefaultValue = "None";
    public string PipelineInput = "False";
    public bool Wildcards;
}

/// <summary>A small reader for the markdown platyPS writes: H1 name, H2 sections, H3 items, fenced code.</summary>
internal static partial class PlatyPSMarkdown
{
    public static CommandHelp Parse(string markdown, string sourceName)
    {
        var help = new CommandHelp();
        var lines = markdown.Replace("\r\n", "\n").Split('\n').ToList();
        int i = 0;
        // YAML front matter
        if (lines.Count > 0 && lines[0].Trim() == "---")
        {
            for (i = 1; i < lines.Count && lines[i].Trim() != "---"; i++)
                if (lines[i].StartsWith("online version:", StringComparison.OrdinalIgnoreCase))
                    help.OnlineVersion = lines[i]["online version:".Length..].Trim();
            i++;
        }
        string? h2 = null;
        var h2Body = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        for (; i < lines.Count; i++)
        {
            string line = lines[i];
            if (line.StartsWith("# ", StringComparison.Ordinal) && help.Name.Length == 0 && h2 is null)
            {
                help.Name = line[2..].Trim();
                continue;
            }
            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                h2 = line[3..].Trim().ToUpperInvariant();
                h2Body[h2] = [];
                continue;
            }
            if (h2 is not null) h2Body[h2].Add(line);
        }
        if (help.Name.Length == 0) throw new FormatException($"{sourceName}: no '# Command-Name' heading.");

        help.Synopsis = Text(Get(h2Body, "SYNOPSIS"));
        help.Description = Text(Get(h2Body, "DESCRIPTION"));
        help.Notes = Text(Get(h2Body, "NOTES"));

        foreach (var (title, body) in H3(Get(h2Body, "SYNTAX")))
        {
            var (code, _) = SplitCode(body);
            bool isDefault = title.EndsWith("(Default)", StringComparison.OrdinalIgnoreCase);
            string set = isDefault ? title[..^"(Default)".Length].Trim() : title;
            help.Syntax.Add((set, isDefault, code.Trim()));
        }
        foreach (var (title, body) in H3(Get(h2Body, "EXAMPLES")))
        {
            var (code, rest) = SplitCode(body);
            help.Examples.Add((title, code.Trim(), Text(rest)));
        }
        foreach (var (title, body) in H3(Get(h2Body, "PARAMETERS")))
        {
            if (!title.StartsWith('-')) continue; // "### CommonParameters"
            var (yaml, rest) = SplitCode(body);
            var p = new ParameterHelp { Name = title[1..].Trim(), Description = Text(rest) };
            foreach (string y in yaml.Split('\n'))
            {
                int colon = y.IndexOf(':');
                if (colon < 0) continue;
                string key = y[..colon].Trim(), value = y[(colon + 1)..].Trim();
                switch (key)
                {
                    case "Type": p.Type = value; break;
                    case "Parameter Sets": p.ParameterSets = SplitList(value); break;
                    case "Aliases": p.Aliases = SplitList(value); break;
                    case "Required": p.Required = value.StartsWith("True", StringComparison.OrdinalIgnoreCase); break;
                    case "Position": p.Position = value; break;
                    case "Default value": p.DefaultValue = value; break;
                    case "Accept pipeline input": p.PipelineInput = value; break;
                    case "Accept wildcard characters": p.Wildcards = value.StartsWith("True", StringComparison.OrdinalIgnoreCase); break;
                }
            }
            help.Parameters.Add(p);
        }
        foreach (var (title, body) in H3(Get(h2Body, "INPUTS"))) help.Inputs.Add((title, Text(body)));
        foreach (var (title, body) in H3(Get(h2Body, "OUTPUTS"))) help.Outputs.Add((title, Text(body)));
        foreach (string l in Get(h2Body, "RELATED LINKS"))
        {
            var m = LinkRegex().Match(l);
            if (m.Success) help.Links.Add((m.Groups[1].Value, m.Groups[2].Value));
        }
        return help;
    }

    private static List<string> Get(Dictionary<string, List<string>> d, string key) => d.TryGetValue(key, out var v) ? v : [];

    private static List<string> SplitList(string value) =>
        value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    private static IEnumerable<(string Title, List<string> Body)> H3(List<string> lines)
    {
        string? title = null;
        var body = new List<string>();
        bool inCode = false;
        foreach (string line in lines)
        {
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal)) inCode = !inCode;
            if (!inCode && line.StartsWith("### ", StringComparison.Ordinal))
            {
                if (title is not null) yield return (title, body);
                title = line[4..].Trim();
                body = [];
                continue;
            }
            if (title is not null) body.Add(line);
        }
        if (title is not null) yield return (title, body);
    }

    /// <summary>The first fenced code block, and the lines outside it.</summary>
    private static (string Code, List<string> Others) SplitCode(List<string> body)
    {
        var code = new StringBuilder();
        var rest = new List<string>();
        int state = 0; // 0 before, 1 inside, 2 after the first block
        foreach (string line in body)
        {
            bool fence = line.TrimStart().StartsWith("```", StringComparison.Ordinal);
            if (fence && state < 2) { state++; continue; }
            if (state == 1) code.Append(line).Append('\n');
            else rest.Add(line);
        }
        return (code.ToString(), rest);
    }

    /// <summary>Markdown paragraphs as plain text, paragraphs separated by blank lines.</summary>
    public static string Text(IEnumerable<string> lines)
    {
        var paragraphs = new List<string>();
        var current = new StringBuilder();
        bool inCode = false;
        foreach (string raw in lines)
        {
            string line = raw.TrimEnd();
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                inCode = !inCode;
                continue;
            }
            if (inCode) { current.Append(line).Append('\n'); continue; }
            if (line.Length == 0)
            {
                if (current.Length > 0) { paragraphs.Add(current.ToString().Trim()); current.Clear(); }
                continue;
            }
            bool listItem = line.TrimStart().StartsWith("- ", StringComparison.Ordinal);
            if (current.Length > 0) current.Append(listItem ? "\n" : " ");
            current.Append(line.Trim());
        }
        if (current.Length > 0) paragraphs.Add(current.ToString().Trim());
        return string.Join("\n\n", paragraphs);
    }

    [GeneratedRegex(@"\[([^\]]+)\]\(([^)]*)\)")]
    private static partial Regex LinkRegex();
}
