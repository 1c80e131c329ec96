using System.CommandLine;
using LowRank.Tool.Commands;

namespace LowRank.Tool.Tests;

/// <summary>Configuration layering on the real command tree: user file &lt; project files (outer &lt; inner) &lt;
/// LOWRANK_* &lt; --config &lt; command line; unknown keys and bad values name the key and where it was set.</summary>
public sealed class ConfigurationTests : IDisposable
{
    private readonly TempFolder temp = new();
    private readonly string repo;
    private readonly string sub;
    private readonly string userFile;

    public ConfigurationTests()
    {
        repo = Path.Combine(temp.Path, "repo");
        sub = Path.Combine(repo, "work", "sub");
        Directory.CreateDirectory(sub);
        Directory.CreateDirectory(Path.Combine(repo, ".git"));
        userFile = Path.Combine(temp.Path, "user", "lowrank.json");
        Directory.CreateDirectory(Path.GetDirectoryName(userFile)!);
    }

    public void Dispose() => temp.Dispose();

    private static RootCommand Root()
    {
        var root = new RootCommand("test");
        root.Subcommands.Add(CompressCommand.Create());
        root.Subcommands.Add(DoctorCommand.Create());
        root.Subcommands.Add(CacheCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Options.Add(ToolProgress.CreateOption());
        root.Options.Add(ToolConfiguration.ConfigOption());
        root.Options.Add(ToolConfiguration.NoConfigOption());
        return root;
    }

    /// <summary>What CommandRunner does before invoking: load the layers, validate them, add the configured values.</summary>
    private ParseResult Parse(string[] args, Dictionary<string, string>? environment = null, string? configFile = null, bool noConfig = false, string? cwd = null)
    {
        var root = Root();
        var first = root.Parse(args);
        var layers = ToolConfiguration.LoadLayers(cwd ?? sub, configFile, noConfig, environment ?? [], userFile);
        ToolConfiguration.Validate(root, layers);
        return root.Parse(ToolConfiguration.Apply(root, args, ToolConfiguration.ValuesFor(first, layers)));
    }

    private static string[] Compress(params string[] extra) => ["compress", "model", "--method", "svd", "--ratio", "0.4", "--out", "x", .. extra];

    [Fact]
    public void Each_layer_overrides_the_ones_below_it_and_the_command_line_overrides_all()
    {
        File.WriteAllText(userFile, """{ "compress": { "samples": 5, "seed": 2, "batch-size": 3, "seq-len": 16 } }""");
        File.WriteAllText(Path.Combine(repo, "lowrank.json"), """{ "device": "cpu", "compress": { "samples": 10, "calib-protocol": "plain", "device": "auto" } }""");
        File.WriteAllText(Path.Combine(sub, "lowrank.json"), """{ "compress": { "samples": 20 } }""");
        var config = Path.Combine(temp.Path, "explicit.json");
        File.WriteAllText(config, """{ "compress": { "seq-len": 64 } }""");
        var env = new Dictionary<string, string> { ["LOWRANK_COMPRESS__SEED"] = "3", ["LOWRANK_COMPRESS__SEQ_LEN"] = "48", ["LOWRANK_HOME"] = "/ignored" };

        var parse = Parse(Compress(), env, config);
        Assert.Empty(parse.Errors);
        Assert.Equal(3, parse.GetValue<int>("--batch-size"));           // user file only
        Assert.Equal("plain", parse.GetValue<string>("--protocol")); // project root file (under the old name, an alias)
        Assert.Equal(20, parse.GetValue<int>("--samples"));              // nearer project file beats the outer one and the user file
        Assert.Equal(3, parse.GetValue<int>("--seed"));                  // environment beats the files
        Assert.Equal(64, parse.GetValue<int?>("--seq-len"));             // --config beats the environment
        Assert.Equal(DeviceRequest.Auto, parse.GetValue<DeviceRequest>("--device")); // the command's section beats the top level of the same file

        Assert.Equal(32, Parse(Compress("--seq-len", "32"), env, config).GetValue<int?>("--seq-len")); // the command line wins
        var doctor = Parse(["doctor"], env, config);
        Assert.Equal(DeviceRequest.Cpu, doctor.GetValue<DeviceRequest>("--device")); // top-level keys reach every command that has the option
    }

    [Fact]
    public void No_config_ignores_files_and_environment_but_not_an_explicit_config_file()
    {
        File.WriteAllText(Path.Combine(sub, "lowrank.json"), """{ "compress": { "samples": 20 } }""");
        var config = Path.Combine(temp.Path, "explicit.json");
        File.WriteAllText(config, """{ "compress": { "seed": 9 } }""");
        var parse = Parse(Compress(), new Dictionary<string, string> { ["LOWRANK_COMPRESS__BATCH_SIZE"] = "2" }, config, noConfig: true);
        Assert.Equal(256, parse.GetValue<int>("--samples"));
        Assert.Equal(8, parse.GetValue<int>("--batch-size"));
        Assert.Equal(9, parse.GetValue<int>("--seed"));
    }

    [Fact]
    public void Project_files_above_the_repository_root_do_not_apply()
    {
        File.WriteAllText(Path.Combine(temp.Path, "lowrank.json"), """{ "compress": { "samples": 99 } }""");
        Assert.Equal(256, Parse(Compress()).GetValue<int>("--samples"));
        Assert.Equal([], ToolConfiguration.ProjectConfigFiles(sub));
    }

    [Fact]
    public void Relative_paths_in_a_file_are_relative_to_that_file()
    {
        File.WriteAllText(Path.Combine(repo, "lowrank.json"), """{ "compress": { "calib": "./data/calib.txt", "out": "plain-relative" } }""");
        var parse = Parse(["compress", "model", "--method", "svd", "--ratio", "0.4"]);
        Assert.Empty(parse.Errors);
        Assert.Equal(Path.Combine(repo, "data", "calib.txt"), parse.GetValue<string?>("--calib"));
        Assert.Equal("plain-relative", parse.GetValue<string>("--output"));
    }

    [Fact]
    public void Nested_sections_reach_subcommands_and_lists_become_repeated_options()
    {
        File.WriteAllText(Path.Combine(repo, "lowrank.json"), """{ "cache": { "verify": { "cache": "/data/c" } }, "compress": { "set": ["AsvdAlpha=0.4", "BatchSize=4"] } }""");
        Assert.Equal("/data/c", Parse(["cache", "verify"]).GetValue<string?>("--cache"));
        Assert.Equal(["AsvdAlpha=0.4", "BatchSize=4"], Parse(Compress()).GetValue<string[]>("--set")!);
    }

    [Theory]
    [InlineData("""{ "compress": { "sampels": 5 } }""", "compress:sampels")]
    [InlineData("""{ "colour": "blue" }""", "colour")]
    [InlineData("""{ "compress": 5 }""", "compress")]
    [InlineData("""{ "cache": { "cache": "/x" } }""", "cache:cache")]
    public void Unknown_keys_in_a_file_are_LRK6001_with_the_key_path_and_the_file(string json, string key)
    {
        var file = Path.Combine(sub, "lowrank.json");
        File.WriteAllText(file, json);
        var e = Assert.Throws<LrkException>(() => Parse(["doctor"]));
        Assert.Equal(ErrorCodes.UnknownConfigKey, e.Code);
        Assert.Contains($"unknown key '{key}'", e.Message, StringComparison.Ordinal);
        Assert.Contains(file, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_environment_keys_name_the_variable()
    {
        var e = Assert.Throws<LrkException>(() => Parse(["doctor"], new Dictionary<string, string> { ["LOWRANK_COMPRESS__SAMPELS"] = "5" }));
        Assert.Equal(ErrorCodes.UnknownConfigKey, e.Code);
        Assert.Contains("LOWRANK_COMPRESS__SAMPELS", e.Message, StringComparison.Ordinal);
        // The product's own variables are not configuration keys.
        Parse(["doctor"], new Dictionary<string, string> { ["LOWRANK_HOME"] = "/x", ["LOWRANK_CACHE"] = "/y", ["LOWRANK_DEBUG"] = "1" });
    }

    [Theory]
    [InlineData("""{ "compress": { "samples": "many" } }""", "compress:samples")]
    [InlineData("""{ "compress": { "ratio": 1.5 } }""", "compress:ratio")]
    [InlineData("""{ "compress": { "method": "zip" } }""", "compress:method")]
    [InlineData("""{ "compress": { "factor-dtype": "int5" } }""", "compress:factor-dtype")]
    [InlineData("""{ "progress": "loud" }""", "progress")]
    public void Bad_values_are_LRK6002_with_the_key_path_and_the_file(string json, string key)
    {
        var file = Path.Combine(repo, "lowrank.json");
        File.WriteAllText(file, json);
        var e = Assert.Throws<LrkException>(() => Parse(["compress", "model", "--out", "x"]));
        Assert.Equal(ErrorCodes.BadConfigValue, e.Code);
        Assert.Contains($"{file} (project): {key} = ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_environment_value_names_the_variable_and_the_engine_check_behind_it()
    {
        var e = Assert.Throws<LrkException>(() => Parse(["compress", "model", "--method", "svd", "--out", "x"], new Dictionary<string, string> { ["LOWRANK_COMPRESS__RATIO"] = "0" }));
        Assert.Equal(ErrorCodes.BadConfigValue, e.Code);
        Assert.Contains("environment variable LOWRANK_COMPRESS__RATIO: compress:ratio = '0'", e.Message, StringComparison.Ordinal);
        Assert.Contains(ErrorCodes.BadRatio, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_is_not_json_is_LRK6002()
    {
        var file = Path.Combine(sub, "lowrank.json");
        File.WriteAllText(file, "{ compress: ");
        var e = Assert.Throws<LrkException>(() => Parse(["doctor"]));
        Assert.Equal(ErrorCodes.BadConfigValue, e.Code);
        Assert.Contains(file, e.Message, StringComparison.Ordinal);
    }
}
