using System.Text;
using System.Text.RegularExpressions;

namespace PSLinuxTrace.Engine.Text;

/// <summary>
/// PowerShell-style wildcards (* ? [abc] [a-z], backtick escapes) compiled once to a regular
/// expression. Case-sensitive by default: symbol names and Linux paths are.
/// </summary>
public sealed class Glob
{
    private readonly Regex? _regex;
    private readonly string? _literal;

    public string Pattern { get; }

    /// <summary>True when the pattern has wildcard characters (else it is a literal compared exactly).</summary>
    public bool HasWildcards => _regex is not null;

    /// <summary>The pattern with escapes removed, when it has no wildcards.</summary>
    public string? Literal => _literal;

    public Glob(string pattern, bool ignoreCase = false)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        Pattern = pattern;
        var sb = new StringBuilder("^");
        var lit = new StringBuilder();
        bool wild = false;
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            switch (c)
            {
                case '`':
                    if (i + 1 >= pattern.Length) throw new ArgumentException($"The wildcard pattern '{pattern}' ends with an escape character (`).", nameof(pattern));
                    i++;
                    sb.Append(Regex.Escape(pattern[i].ToString()));
                    lit.Append(pattern[i]);
                    break;
                case '*': sb.Append(".*"); wild = true; break;
                case '?': sb.Append('.'); wild = true; break;
                case '[':
                {
                    int close = FindClose(pattern, i);
                    if (close < 0) throw new ArgumentException($"The wildcard pattern '{pattern}' is not valid: '[' at position {i} has no closing ']'.", nameof(pattern));
                    sb.Append('[');
                    for (int j = i + 1; j < close; j++)
                    {
                        char k = pattern[j];
                        if (k == '`' && j + 1 < close) { j++; sb.Append(Regex.Escape(pattern[j].ToString())); }
                        else if (k == '-' && j > i + 1 && j < close - 1) sb.Append('-');
                        else sb.Append(k is '\\' or ']' or '[' or '^' or '-' ? "\\" + k : k.ToString());
                    }
                    sb.Append(']');
                    i = close;
                    wild = true;
                    break;
                }
                default:
                    sb.Append(Regex.Escape(c.ToString()));
                    lit.Append(c);
                    break;
            }
        }
        sb.Append('$');
        if (wild)
        {
            try
            {
                _regex = new Regex(sb.ToString(), RegexOptions.CultureInvariant | RegexOptions.Singleline | (ignoreCase ? RegexOptions.IgnoreCase : 0));
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException($"The wildcard pattern '{pattern}' is not valid: {ex.Message}", nameof(pattern), ex);
            }
        }
        else
        {
            _literal = lit.ToString();
            _ignoreCase = ignoreCase;
        }
    }

    private readonly bool _ignoreCase;

    private static int FindClose(string p, int open)
    {
        for (int j = open + 1; j < p.Length; j++)
        {
            if (p[j] == '`') { j++; continue; }
            if (p[j] == ']' && j > open + 1) return j;
        }
        return -1;
    }

    public bool IsMatch(string text) =>
        _regex is not null ? _regex.IsMatch(text) : string.Equals(text, _literal, _ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

    /// <summary>True when <paramref name="s"/> contains *, ? or [ not escaped by a backtick.</summary>
    public static bool ContainsWildcards(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '`') { i++; continue; }
            if (s[i] is '*' or '?' or '[') return true;
        }
        return false;
    }

    public override string ToString() => Pattern;
}
