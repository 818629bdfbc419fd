using System.Xml.Linq;

namespace PSLinuxTrace.HelpBuilder;

/// <summary>Writes the MAML (command help schema) that Get-Help reads from &lt;Assembly&gt;.dll-Help.xml.</summary>
internal static class MamlWriter
{
    private static readonly XNamespace Msh = "http://msh";
    private static readonly XNamespace Maml = "http://schemas.microsoft.com/maml/2004/10";
    private static readonly XNamespace Command = "http://schemas.microsoft.com/maml/dev/command/2004/10";
    private static readonly XNamespace Dev = "http://schemas.microsoft.com/maml/dev/2004/10";

    public static XDocument Write(IEnumerable<CommandHelp> commands)
    {
        var root = new XElement(Msh + "helpItems", new XAttribute("schema", "maml"),
            new XAttribute(XNamespace.Xmlns + "maml", Maml), new XAttribute(XNamespace.Xmlns + "command", Command),
            new XAttribute(XNamespace.Xmlns + "dev", Dev));
        foreach (var c in commands) root.Add(CommandElement(c));
        return new XDocument(new XDeclaration("1.0", "utf-8", null), root);
    }

    private static XElement Paras(string text) =>
        new(Maml + "description", text.Split("\n\n").Select(p => new XElement(Maml + "para", p)));

    private static XElement CommandElement(CommandHelp c)
    {
        string[] verbNoun = c.Name.Split('-', 2);
        return new XElement(Command + "command",
            new XElement(Command + "details",
                new XElement(Command + "name", c.Name),
                new XElement(Command + "verb", verbNoun[0]),
                new XElement(Command + "noun", verbNoun.Length > 1 ? verbNoun[1] : ""),
                Paras(c.Synopsis)),
            Paras(c.Description),
            new XElement(Command + "syntax", c.Syntax.Select(s => SyntaxItem(c, s.SetName))),
            new XElement(Command + "parameters", c.Parameters.Select(p => ParameterElement(p))),
            new XElement(Command + "inputTypes", c.Inputs.Select(t => TypeElement(Command + "inputType", t))),
            new XElement(Command + "returnValues", c.Outputs.Select(t => TypeElement(Command + "returnValue", t))),
            new XElement(Maml + "alertSet", new XElement(Maml + "alert", c.Notes.Split("\n\n").Select(p => new XElement(Maml + "para", p)))),
            new XElement(Command + "examples", c.Examples.Select(e =>
                new XElement(Command + "example",
                    new XElement(Maml + "title", $"-------------------------- {e.Title} --------------------------"),
                    new XElement(Dev + "code", e.Code),
                    new XElement(Dev + "remarks", e.Remarks.Split("\n\n").Select(p => new XElement(Maml + "para", p)))))),
            new XElement(Command + "relatedLinks", RelatedLinks(c)));
    }

    // Get-Help -Online opens the first link with a uri (platyPS puts the "online version" first), and
    // fails on one that is not an absolute URI: a link to another markdown file keeps only its text.
    private static IEnumerable<XElement> RelatedLinks(CommandHelp c)
    {
        var links = c.Links.Select(l => (l.Text, Uri: IsWebAddress(l.Uri) ? l.Uri : ""));
        if (IsWebAddress(c.OnlineVersion)) links = links.Prepend(("Online Version:", c.OnlineVersion));
        return links.Select(l => new XElement(Maml + "navigationLink", new XElement(Maml + "linkText", l.Text), new XElement(Maml + "uri", l.Uri)));
    }

    private static bool IsWebAddress(string uri) =>
        Uri.TryCreate(uri, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttps || u.Scheme == Uri.UriSchemeHttp);

    private static XElement SyntaxItem(CommandHelp c, string setName) =>
        new(Command + "syntaxItem",
            new XElement(Maml + "name", c.Name),
            c.Parameters
                .Where(p => p.ParameterSets.Count == 0 || p.ParameterSets.Contains("(All)") || p.ParameterSets.Contains(setName))
                .Select(p => ParameterElement(p)));

    private static XElement ParameterElement(ParameterHelp p)
    {
        string type = p.Type.Length == 0 ? "SwitchParameter" : p.Type;
        return new XElement(Command + "parameter",
            new XAttribute("required", p.Required ? "true" : "false"),
            new XAttribute("variableLength", "true"),
            new XAttribute("globbing", p.Wildcards ? "true" : "false"),
            new XAttribute("pipelineInput", p.PipelineInput),
            new XAttribute("position", p.Position.Equals("Named", StringComparison.OrdinalIgnoreCase) ? "named" : p.Position),
            new XAttribute("aliases", p.Aliases.Count == 0 || p.Aliases.Contains("None") ? "none" : string.Join(", ", p.Aliases)),
            new XElement(Maml + "name", p.Name),
            Paras(p.Description),
            type == "SwitchParameter" ? null : new XElement(Command + "parameterValue", new XAttribute("required", "true"), new XAttribute("variableLength", "false"), type),
            new XElement(Dev + "type", new XElement(Maml + "name", type), new XElement(Maml + "uri")),
            new XElement(Dev + "defaultValue", p.DefaultValue));
    }

    private static XElement TypeElement(XName name, (string Type, string Description) t) =>
        new(name,
            new XElement(Dev + "type", new XElement(Maml + "name", t.Type)),
            Paras(t.Description));
}
