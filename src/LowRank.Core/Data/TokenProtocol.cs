using System.Text.RegularExpressions;
using LowRank.Models;

namespace LowRank.Data;

/// <summary>
/// How text becomes one token stream. Perplexity moves 5–8% with this choice, so every report and artifact records it.
/// <list type="bullet">
/// <item><b>stream</b> (the stories260K README protocol): split the text into paragraphs at every blank line — a run
/// of two or more "\n" (<see cref="ParagraphBreak"/>) — and drop empty paragraphs; encode each paragraph without BOS,
/// with the dummy-prefix space only on the first; join as <c>[BOS] + p0 + J + p1 + J + …</c> where J is the
/// tokenizer's encoding of <see cref="JoinText"/> ("\n") without BOS or dummy prefix (id 13 for llama2.c and
/// SentencePiece byte-fallback vocabularies, 198 for GPT-2).</item>
/// <item><b>plain</b>: <c>[BOS] + encode(text)</c> with the dummy prefix — the text as one document.</item>
/// </list>
/// BOS is added when <see cref="AddBos"/> is set and the tokenizer has one.
/// </summary>
public sealed record TokenProtocol
{
    public const string StreamName = "stream";
    public const string PlainName = "plain";

    public required string Name { get; init; }

    public bool AddBos { get; init; } = true;

    /// <summary>stream only: the regular expression that separates paragraphs.</summary>
    public string ParagraphBreak { get; init; } = @"\n{2,}";

    /// <summary>stream only: the text whose tokens go between paragraphs.</summary>
    public string JoinText { get; init; } = "\n";

    public static TokenProtocol Stream { get; } = new() { Name = StreamName };

    public static TokenProtocol Plain { get; } = new() { Name = PlainName };

    public static TokenProtocol Parse(string name, bool addBos = true) => name switch
    {
        StreamName => Stream with { AddBos = addBos },
        PlainName => Plain with { AddBos = addBos },
        _ => throw new LrkException(ErrorCodes.BadArgument, $"unknown text protocol '{name}'; use {StreamName} or {PlainName}"),
    };

    public TokenizedText Encode(ITokenizer tokenizer, SourceText source, CancellationToken cancellation = default)
    {
        var bosId = AddBos ? tokenizer.BosId : null;
        var tokens = new List<int>(source.Text.Length / 3 + 16);
        if (bosId is { } bos) tokens.Add(bos);
        int[] join = [];
        var paragraphs = 1;
        if (Name == StreamName)
        {
            join = [.. tokenizer.Encode(JoinText, addBos: false, addDummyPrefix: false)];
            if (join.Length == 0)
                throw new LrkException(ErrorCodes.BadTokenizer, $"the tokenizer encodes the paragraph join text {Escape(JoinText)} to no tokens");
            string[] parts;
            try
            {
                parts = [.. Regex.Split(source.Text, ParagraphBreak).Where(p => p.Length > 0)];
            }
            catch (ArgumentException e)
            {
                throw new LrkException(ErrorCodes.BadArgument, $"paragraph break /{ParagraphBreak}/ is not a valid regular expression: {e.Message}", e);
            }
            if (parts.Length == 0) throw new LrkException(ErrorCodes.DataTooShort, $"{source.Location} has no paragraphs (the text is empty or only blank lines)");
            for (var i = 0; i < parts.Length; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                if (i > 0) tokens.AddRange(join);
                tokens.AddRange(tokenizer.Encode(parts[i], addBos: false, addDummyPrefix: i == 0));
            }
            paragraphs = parts.Length;
        }
        else if (Name == PlainName)
        {
            if (source.Text.Length == 0) throw new LrkException(ErrorCodes.DataTooShort, $"{source.Location} is empty");
            tokens.AddRange(tokenizer.Encode(source.Text, addBos: false, addDummyPrefix: true));
        }
        else
        {
            throw new LrkException(ErrorCodes.BadArgument, $"unknown text protocol '{Name}'");
        }
        return new TokenizedText([.. tokens], Describe(bosId, join, paragraphs));
    }

    private TokenProtocolRecord Describe(int? bosId, int[] join, int paragraphs)
    {
        var bos = bosId is { } id ? $"[BOS={id}] + " : "";
        var description = Name == StreamName
            ? $"stream: paragraphs split at /{ParagraphBreak.Replace("\n", "\\n")}/, empty ones dropped; {bos}p0 + J + p1 + J + … with J = encode({Escape(JoinText)}) = [{string.Join(", ", join)}]; dummy prefix on p0 only"
            : $"plain: {bos}encode(text) with the dummy prefix";
        return new TokenProtocolRecord
        {
            Name = Name,
            Description = description,
            Bos = bosId is not null,
            BosId = bosId,
            ParagraphBreak = Name == StreamName ? ParagraphBreak : null,
            JoinTokens = Name == StreamName ? join : null,
            Paragraphs = paragraphs,
        };
    }

    private static string Escape(string text) => "\"" + text.Replace("\\", "\\\\").Replace("\n", "\\n").Replace("\r", "\\r").Replace("\t", "\\t") + "\"";
}

/// <summary>What a report says about the text→token protocol that produced a stream.</summary>
public sealed record TokenProtocolRecord
{
    public required string Name { get; init; }
    public required string Description { get; init; }
    public required bool Bos { get; init; }
    public int? BosId { get; init; }
    public string? ParagraphBreak { get; init; }
    public int[]? JoinTokens { get; init; }
    public int Paragraphs { get; init; }
}

/// <summary>One token stream and how it was made.</summary>
public sealed record TokenizedText(int[] Tokens, TokenProtocolRecord Protocol)
{
    public int Count => Tokens.Length;
}
