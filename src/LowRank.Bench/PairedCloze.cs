using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using LowRank.Evaluation.ZeroShot;

namespace LowRank.Bench;

/// <summary>What a <see cref="PairedCloze"/> item asks the model to complete.</summary>
public enum ClozeKind
{
    /// <summary>A sentence given the two before it in its paragraph (HellaSwag-like).</summary>
    Sentence,
    /// <summary>A sentence's last word given the words before it (LAMBADA-like).</summary>
    Word,
}

/// <summary>
/// Zero-shot tasks made from any held-out text, for models trained on text no public benchmark covers. Items come in
/// pairs (A, B) taken far apart in the text, with the same two choices in the same order — A's completion and B's —
/// once with A's context (gold 0) and once with B's (gold 1). A model whose choice does not depend on the context gets
/// exactly one item of every pair right, so chance is exactly 1/2 and any accuracy above it is reading the context.
/// Paragraphs are separated by blank lines (wrapped lines are joined); sentences end at . ! or ? followed by space.
/// </summary>
public static partial class PairedCloze
{
    public static MultipleChoiceTask Make(string name, string text, ClozeKind kind, int maxPairs, string source)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPairs);
        // HellaSwag's preprocessing (brackets removed) up front, so the written file reads back to these very requests.
        var units = (kind == ClozeKind.Sentence ? SentenceUnits(text) : WordUnits(text))
            .Select(u => new Unit(HellaSwagTask.Preprocess(u.Context), HellaSwagTask.Preprocess(u.Completion)))
            .Where(u => u.Context.Length > 0 && u.Completion.Length > 0).ToList();
        var half = units.Count / 2;
        var items = new List<MultipleChoiceItem>();
        // A pair whose two completions are the same string has no right answer: it is skipped.
        for (var k = 0; k < half && items.Count < 2 * maxPairs; k++)
        {
            var a = units[k];
            var b = units[k + half];
            if (a.Completion == b.Completion) continue;
            string[] endings = [a.Completion, b.Completion];
            items.Add(new MultipleChoiceItem($"pair{k}a", [.. endings.Select(e => new ChoiceRequest(a.Context, " " + e))], 0, [.. endings.Select(e => e.EnumerateRunes().Count())]));
            items.Add(new MultipleChoiceItem($"pair{k}b", [.. endings.Select(e => new ChoiceRequest(b.Context, " " + e))], 1, [.. endings.Select(e => e.EnumerateRunes().Count())]));
        }
        if (items.Count == 0)
            throw new LrkException(ErrorCodes.DataTooShort, $"{source} gives no {kind.ToString().ToLowerInvariant()} cloze pair (need at least two usable {(kind == ClozeKind.Sentence ? "paragraphs" : "sentences")})");
        return new MultipleChoiceTask(name, TaskFormat.HellaSwag, source, items);
    }

    /// <summary>Writes the task in the HellaSwag JSON Lines layout (<c>ctx</c>, <c>endings</c>, <c>label</c>) that
    /// <see cref="TaskFile.Read"/> reads back to the same requests; atomically (temporary file, then rename).</summary>
    public static void Write(MultipleChoiceTask task, string path)
    {
        var text = new StringBuilder();
        foreach (var item in task.Items)
        {
            text.Append(JsonSerializer.Serialize(new
            {
                ind = item.Id,
                ctx = item.Choices[0].Context,
                endings = item.Choices.Select(c => c.Continuation.TrimStart()).ToArray(),
                label = item.Gold,
            })).Append('\n');
        }
        var temp = path + ".tmp";
        File.WriteAllText(temp, text.ToString(), new UTF8Encoding(false));
        File.Move(temp, path, overwrite: true);
    }

    private sealed record Unit(string Context, string Completion);

    /// <summary>The paragraphs, wrapped lines joined; a first paragraph that starts inside a word or sentence (a byte
    /// range cut into the text) is dropped.</summary>
    private static IEnumerable<string> Paragraphs(string text) =>
        ParagraphBreak().Split(text.Replace("\r\n", "\n")).Select(p => Whitespace().Replace(p, " ").Trim()).Where(p => p.Length > 0)
            .Where((p, i) => i > 0 || !char.IsLower(p[0]));

    /// <summary>Consecutive, non-overlapping sentence triples of every paragraph (sentences of 10–300 characters).</summary>
    private static List<Unit> SentenceUnits(string text)
    {
        var units = new List<Unit>();
        foreach (var sentences in Paragraphs(text).Select(p => SentenceEnd().Split(p)))
        {
            for (var i = 0; i + 3 <= sentences.Length; i += 3)
            {
                if (sentences.Skip(i).Take(3).All(x => x.Length is > 10 and < 300))
                    units.Add(new Unit(sentences[i] + " " + sentences[i + 1], sentences[i + 2]));
            }
        }
        return units;
    }

    private static List<Unit> WordUnits(string text)
    {
        var units = new List<Unit>();
        foreach (var sentence in Paragraphs(text).SelectMany(p => SentenceEnd().Split(p)))
        {
            var words = sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length < 8 || sentence.Length > 300) continue;
            var last = words[^1].TrimEnd('.', '!', '?', '"', '\'', '’', '”', ')');
            if (last.Length < 2 || !last.All(char.IsLetter)) continue;
            units.Add(new Unit(string.Join(' ', words[..^1]), last));
        }
        return units;
    }

    [GeneratedRegex(@"\n[ \t]*\n")]
    private static partial Regex ParagraphBreak();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"(?<=[.!?])\s+")]
    private static partial Regex SentenceEnd();
}
