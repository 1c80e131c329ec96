using System.Text;
using System.Text.RegularExpressions;

namespace LowRank.Data;

/// <summary>How a WikiText file becomes text.</summary>
public enum WikiTextMode
{
    /// <summary>The text the compression papers score (GPTQ, SVD-LLM, ASVD): the file's lines as the Hugging Face
    /// <c>wikitext</c> dataset yields them (a whitespace-only line becomes "", every other line keeps its text and its
    /// "\n"), joined with "\n\n" — <c>"\n\n".join(dataset["text"])</c>. The WikiText tokenisation is kept verbatim:
    /// <c>&lt;unk&gt;</c>, <c> @-@ </c>, <c> @,@ </c>, <c> @.@ </c>, spaces around punctuation, <c> = = Heading = = </c>.</summary>
    Papers,

    /// <summary>lm-evaluation-harness's <c>wikitext_detokenizer</c> applied to the whole file: <c> @-@ </c>→"-",
    /// <c> @,@ </c>→",", <c> @.@ </c>→".", spaces before punctuation and inside brackets/quotes removed,
    /// <c>= = =</c>→<c>===</c>, <c> 's</c>→<c>'s</c>, line-edge spaces removed. <c>&lt;unk&gt;</c> stays.
    /// (The harness applies it page by page; on a whole file it differs only where a page has an unmatched quote.)</summary>
    Detokenized,
}

/// <summary>
/// WikiText-2/103 files. The "raw" (<c>wiki.*.raw</c>, <c>wikitext-2-raw-v1</c>) and "tokenized" (<c>wiki.*.tokens</c>,
/// <c>wikitext-2-v1</c>) releases share one layout — one paragraph or heading per line, tokens separated by spaces,
/// numbers split as <c>1 @,@ 000</c> — and differ only in that the tokenized release replaces rare words by
/// <c>&lt;unk&gt;</c>. Both are read the same way; <see cref="WikiTextMode"/> decides the text.
/// </summary>
public static partial class WikiText
{
    public static string ToText(string fileText, WikiTextMode mode) => mode switch
    {
        WikiTextMode.Papers => JoinAsDatasetRows(fileText),
        WikiTextMode.Detokenized => Detokenize(fileText),
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    public static string Describe(WikiTextMode mode) => mode switch
    {
        WikiTextMode.Papers => "WikiText lines as Hugging Face dataset rows joined with \"\\n\\n\" (papers' protocol, tokens verbatim)",
        WikiTextMode.Detokenized => "WikiText detokenized as lm-evaluation-harness does",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary><c>"\n\n".join(rows)</c> where rows are the file's lines with their "\n", whitespace-only lines as "".</summary>
    public static string JoinAsDatasetRows(string fileText)
    {
        var builder = new StringBuilder(fileText.Length * 2);
        var position = 0;
        var first = true;
        while (position < fileText.Length)
        {
            var newline = fileText.IndexOf('\n', position);
            var end = newline < 0 ? fileText.Length : newline + 1;
            var row = fileText.AsSpan(position, end - position);
            if (!first) builder.Append("\n\n");
            first = false;
            if (!row.IsWhiteSpace()) builder.Append(row);
            position = end;
        }
        return builder.ToString();
    }

    /// <summary>lm-evaluation-harness <c>wikitext_detokenizer</c>, step for step and in its order.</summary>
    public static string Detokenize(string text)
    {
        // contractions
        text = text.Replace("s '", "s'");
        text = ContractionDigit().Replace(text, "/'[0-9]/");
        // number separators
        text = text.Replace(" @-@ ", "-").Replace(" @,@ ", ",").Replace(" @.@ ", ".");
        // punctuation
        text = text.Replace(" : ", ": ").Replace(" ; ", "; ").Replace(" . ", ". ").Replace(" ! ", "! ").Replace(" ? ", "? ").Replace(" , ", ", ");
        // double brackets
        text = Parentheses().Replace(text, "($1)");
        text = SquareBrackets().Replace(text, "[$1]");
        text = Braces().Replace(text, "{$1}");
        text = DoubleQuotes().Replace(text, "\"$1\"");
        text = SingleQuotes().Replace(text, "'$1'");
        // miscellaneous
        text = text.Replace("= = = =", "====").Replace("= = =", "===").Replace("= =", "==");
        text = text.Replace(" \u00b0 ", "\u00b0");
        text = text.Replace(" \n", "\n").Replace("\n ", "\n");
        text = text.Replace(" N ", " 1 ").Replace(" 's", "'s");
        return text;
    }

    // The harness's pattern is r"/' [0-9]/" with literal slashes; kept as is so the output matches it.
    [GeneratedRegex(@"/' [0-9]/")]
    private static partial Regex ContractionDigit();

    [GeneratedRegex(@"\(\s*([^\)]*?)\s*\)")]
    private static partial Regex Parentheses();

    [GeneratedRegex(@"\[\s*([^\]]*?)\s*\]")]
    private static partial Regex SquareBrackets();

    [GeneratedRegex(@"{\s*([^}]*?)\s*}")]
    private static partial Regex Braces();

    [GeneratedRegex("\"\\s*([^\"]*?)\\s*\"")]
    private static partial Regex DoubleQuotes();

    [GeneratedRegex(@"'\s*([^']*?)\s*'")]
    private static partial Regex SingleQuotes();
}
