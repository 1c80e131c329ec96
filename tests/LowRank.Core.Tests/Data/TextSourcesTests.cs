using System.Text;
using LowRank.Data;
using LowRank.Tests.TestSupport;

namespace LowRank.Tests.Data;

public sealed class TextSourcesTests : IDisposable
{
    private readonly TempFolder temp = new("lowrank-text");

    public void Dispose() => temp.Dispose();

    /// <summary>An npm corpus spec, read from the corpora eng/setup.sh installs.</summary>
    private static SourceText LoadNpm(string spec) => TextSources.Load(spec, new TextSourceOptions { NpmRoot = EvalTestData.NpmRoot });

    private string Write(string name, string text) => WriteBytes(name, Encoding.UTF8.GetBytes(text));

    private string WriteBytes(string name, byte[] bytes)
    {
        var path = temp.Combine(name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Sha256_is_of_the_exact_utf8_text_bytes()
    {
        var source = TextSources.Load(Write("abc.txt", "abc"));
        // FIPS 180-2 test vector for "abc"
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", source.Sha256);
        Assert.Equal(3, source.Bytes);
        Assert.Equal("plain", source.Format);
    }

    [Fact]
    public void Byte_range_suffix_and_options_select_the_same_bytes()
    {
        var path = Write("t.txt", "héllo world, again");
        var bySpec = TextSources.Load(path + "[3:8]");
        var byOptions = TextSources.Load(path, new TextSourceOptions { ByteStart = 3, ByteEnd = 8 });
        Assert.Equal("llo w", bySpec.Text);
        Assert.Equal(bySpec.Text, byOptions.Text);
        Assert.Equal(bySpec.Sha256, byOptions.Sha256);
        Assert.Equal(SourceText.Sha256Hex("llo w"), bySpec.Sha256);
        Assert.Equal(new ByteRange(3, 8), bySpec.Range);
        Assert.Equal(19, bySpec.TotalBytes);
        Assert.Contains("bytes [3, 8)", bySpec.Description);
        Assert.Equal("héllo", TextSources.Load(path + "[:6]").Text);
        Assert.Equal("again", TextSources.Load(path + "[14:]").Text);
    }

    [Fact]
    public void Byte_range_inside_a_character_names_the_nearest_boundaries()
    {
        var path = Write("t.txt", "héllo"); // é = bytes 1..2
        var e = Assert.Throws<LrkException>(() => TextSources.Load(path + "[2:4]"));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
        Assert.Contains("byte 2", e.Message);
        Assert.Contains("1 and 3", e.Message);
    }

    [Theory]
    [InlineData("[0:99]", "past the end")]
    [InlineData("[4:4]", "empty")]
    public void Bad_byte_ranges_are_rejected(string range, string message)
    {
        var e = Assert.Throws<LrkException>(() => TextSources.Load(Write("t.txt", "hello") + range));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Spec_range_and_option_range_together_are_rejected()
    {
        var path = Write("t.txt", "hello");
        var e = Assert.Throws<LrkException>(() => TextSources.Load(path + "[0:2]", new TextSourceOptions { ByteStart = 1 }));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
    }

    [Fact]
    public void Missing_file_and_invalid_utf8_are_data_unreadable()
    {
        var missing = Assert.Throws<LrkException>(() => TextSources.Load(temp.Combine("nope.txt")));
        Assert.Equal(ErrorCodes.DataUnreadable, missing.Code);
        Assert.Contains("nope.txt", missing.Message);
        var invalid = Assert.Throws<LrkException>(() => TextSources.Load(WriteBytes("bad.txt", [0x61, 0x62, 0xFF, 0x63])));
        Assert.Equal(ErrorCodes.DataUnreadable, invalid.Code);
        Assert.Contains("byte 2", invalid.Message);
    }

    [Fact]
    public void A_leading_bom_is_dropped()
    {
        var source = TextSources.Load(WriteBytes("bom.txt", [0xEF, 0xBB, 0xBF, 0x68, 0x69]));
        Assert.Equal("hi", source.Text);
        Assert.Equal(2, source.Bytes);
    }

    [Fact]
    public void Folder_files_are_sorted_by_relative_path_and_joined_with_a_blank_line()
    {
        Write("corpus/b.txt", "second\n");
        Write("corpus/a.txt", "first\r\n\r\n");
        Write("corpus/sub/c.txt", "third");
        Write("corpus/skip.md", "not text");
        var source = TextSources.Load(temp.Combine("corpus"));
        Assert.Equal("folder", source.Format);
        Assert.Equal("first\n\nsecond\n\nthird", source.Text);
        Assert.Contains("3 files", source.Description);
    }

    [Fact]
    public void Empty_folder_is_data_unreadable()
    {
        Directory.CreateDirectory(temp.Combine("empty"));
        var e = Assert.Throws<LrkException>(() => TextSources.Load(temp.Combine("empty")));
        Assert.Equal(ErrorCodes.DataUnreadable, e.Code);
    }

    [Fact]
    public void Json_lines_read_the_chosen_field()
    {
        var path = Write("d.jsonl", "{\"text\":\"one\",\"meta\":{\"body\":\"uno\"}}\n\n{\"text\":\"two\",\"meta\":{\"body\":\"dos\"}}\n");
        Assert.Equal("one\n\ntwo", TextSources.Load(path).Text);
        Assert.Equal("uno\n\ndos", TextSources.Load(path, new TextSourceOptions { JsonField = "meta.body" }).Text);
    }

    [Theory]
    [InlineData("{\"text\":\"ok\"}\n{\"text\":", "line 2")]
    [InlineData("{\"text\":\"ok\"}\n\n{\"other\":1}", "line 3: no field 'text'")]
    [InlineData("{\"text\":5}", "line 1: field 'text' is Number")]
    public void Bad_json_lines_name_the_line(string content, string message)
    {
        var e = Assert.Throws<LrkException>(() => TextSources.Load(Write("bad.jsonl", content)));
        Assert.Equal(ErrorCodes.DataUnreadable, e.Code);
        Assert.Contains(message, e.Message);
    }

    private const string WikiSample = " \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 ) is a 1 @,@ 000 @-@ year game . \n = = Gameplay = = \n";

    [Fact]
    public void Wikitext_papers_mode_joins_dataset_rows_with_blank_lines()
    {
        var path = Write("wiki.valid.tokens", WikiSample);
        var source = TextSources.Load(path, new TextSourceOptions { Format = TextFormat.WikiText });
        // rows: "", " = Valkyria Chronicles III = \n", "", " Senjō … . \n", " = = Gameplay = = \n"
        Assert.Equal(
            "\n\n = Valkyria Chronicles III = \n\n\n\n\n Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 ) is a 1 @,@ 000 @-@ year game . \n\n\n = = Gameplay = = \n",
            source.Text);
        Assert.Equal("wikitext", source.Format);
    }

    [Fact]
    public void Wikitext_detokenized_mode_follows_the_harness()
    {
        var text = WikiText.ToText(WikiSample, WikiTextMode.Detokenized);
        Assert.Equal(
            "\n= Valkyria Chronicles III =\n\nSenjō no Valkyria 3: <unk> Chronicles (Japanese: 戦場のヴァルキュリア3) is a 1,000-year game.\n== Gameplay ==\n",
            text);
    }

    // Reference digests from an independent Python run over the shared file: the Hugging Face loader's rows
    // ("\n\n".join of `row if row.strip() else ""` over the file's lines) and lm-evaluation-harness's wikitext_detokenizer.
    [RequiresPathFact("../shared/data/wikitext2_tokens_valid.txt")]
    public void Wikitext2_validation_text_matches_the_python_reference_in_both_modes()
    {
        var path = EvalTestData.WikiText2;
        var papers = TextSources.Load(path, new TextSourceOptions { Format = TextFormat.WikiText });
        Assert.Equal("005655d5f0af5b072831f3a97361c7e5f6974ab000dfdd541fa10c6e8c12d28f", papers.Sha256);
        Assert.Equal(1_125_112, papers.Text.Length);
        var detokenized = TextSources.Load(path, new TextSourceOptions { Format = TextFormat.WikiText, WikiText = WikiTextMode.Detokenized });
        Assert.Equal("690623f8b014db8936214a63f29caee6503f4b9a21f0e883957c278868a9be34", detokenized.Sha256);
        Assert.Equal(1_076_890, detokenized.Text.Length);
    }

    [Fact]
    public void Unknown_npm_corpus_lists_the_known_ones()
    {
        var e = Assert.Throws<LrkException>(() => LoadNpm("npm:shakespeare"));
        Assert.Contains(e.Code, new[] { ErrorCodes.BadArgument, ErrorCodes.DataUnreadable });
    }

    [Fact]
    public void Missing_npm_corpora_say_where_and_how_to_install()
    {
        var e = Assert.Throws<LrkException>(() => TextSources.Load("npm:moby-dick", new TextSourceOptions { NpmRoot = temp.Combine("nowhere") }));
        Assert.Equal(ErrorCodes.DataUnreadable, e.Code);
        Assert.Contains(temp.Combine("nowhere", "node_modules"), e.Message);
        Assert.Contains("eng/setup.sh", e.Message);
    }

    [Fact]
    public void Brown_tags_are_stripped_keeping_words_and_sentence_breaks()
    {
        var tagged = "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.\n\n\n\tIt/pps cost/vbd 1/2/cd dollar/nn ./.\n";
        Assert.Equal("The Fulton jury said \" no evidence \" .\nIt cost 1/2 dollar .", NpmCorpora.StripBrownTags(tagged));
    }

    [RequiresNpmCorporaFact]
    public void Npm_moby_dick_is_the_novel()
    {
        var source = LoadNpm("npm:moby-dick");
        Assert.StartsWith("CHAPTER 1. Loomings.", source.Text);
        Assert.Contains("Call me Ishmael.", source.Text);
        Assert.True(source.Bytes > 1_000_000);
        Assert.Equal("npm", source.Format);
    }

    [RequiresNpmCorporaFact]
    public void Npm_sotu_joins_the_addresses_in_year_order()
    {
        var source = LoadNpm("npm:sotu");
        Assert.StartsWith("Fellow-Citizens of the Senate and House of Representatives:", source.Text);
        Assert.True(source.Bytes > 10_000_000);
        Assert.Contains("addresses", source.Description);
    }

    [RequiresNpmCorporaFact]
    public void Npm_brown_has_no_tags_left()
    {
        var source = LoadNpm("npm:brown[0:2000]");
        Assert.StartsWith("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced \" no evidence \"", source.Text);
        Assert.DoesNotContain("/at ", source.Text);
        Assert.DoesNotContain("/nn", source.Text);
        Assert.Contains("500 files", source.Description);
    }
}
