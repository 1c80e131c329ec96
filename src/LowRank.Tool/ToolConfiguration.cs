using System.CommandLine;
using System.CommandLine.Parsing;
using Microsoft.Extensions.Configuration;

namespace LowRank.Tool;

/// <summary>One configuration layer: where its values come from and the values, as flat keys ("compress:ratio").</summary>
public sealed record ConfigurationLayer(string Source, string? BaseFolder, IReadOnlyDictionary<string, string> Values);

/// <summary>A value the command line did not give and a configuration layer did.</summary>
public sealed record ConfiguredValue(string Key, string Value, string Source, string Option);

/// <summary>
/// Default option values from configuration, layered (later wins):
/// <list type="number">
/// <item>user <c>lowrank.json</c>: <c>$XDG_CONFIG_HOME/lowrank/lowrank.json</c>, else <c>~/.config/lowrank/lowrank.json</c>;</item>
/// <item>project <c>lowrank.json</c> files from the repository or solution root (the nearest folder upward holding
/// <c>.git</c>, <c>*.sln</c> or <c>*.slnx</c>) down to the current directory, nearer files winning;</item>
/// <item><c>LOWRANK_*</c> environment variables: <c>LOWRANK_COMPRESS__RATIO=0.4</c> is key <c>compress:ratio</c>
/// (<c>__</c> separates sections, <c>_</c> stands for <c>-</c>: <c>LOWRANK_COMPRESS__FACTOR_DTYPE</c>);</item>
/// <item><c>--config FILE</c>;</item>
/// <item>options on the command line, which always win.</item>
/// </list>
/// Keys are a command's option names without dashes, in a section per command (<c>{"compress": {"ratio": 0.4}}</c>,
/// <c>{"cache": {"verify": {"cache": "/data/c"}}}</c>), or at the top level for every command that has that option
/// (<c>{"device": "cpu"}</c>). Within one layer a command's section beats the top level; a higher layer beats both.
/// Values starting with <c>./</c> or <c>../</c> in a file are paths relative to that file's folder. An unknown key
/// in any layer is <see cref="ErrorCodes.UnknownConfigKey"/>; a value the option rejects is
/// <see cref="ErrorCodes.BadConfigValue"/>; both name the key's path and where it was set.
/// <c>--no-config</c> ignores the files and the environment (the MSBuild task passes it, so a build's result depends
/// only on the item's metadata, which its cache key is made of).
/// </summary>
public static class ToolConfiguration
{
    public const string FileName = "lowrank.json";
    public const string EnvironmentPrefix = "LOWRANK_";

    /// <summary>The product's own environment variables: they configure where things live, not command options.</summary>
    public static readonly IReadOnlyList<string> ReservedVariables =
        ["LOWRANK_HOME", "LOWRANK_CACHE", "LOWRANK_DEBUG", "LOWRANK_LIBTORCH", "LOWRANK_NPM_DATA", "LOWRANK_TOOL"];

    /// <summary>Options that are about the command line itself, never configured.</summary>
    private static readonly HashSet<string> NotConfigurable = new(StringComparer.Ordinal) { "help", "version", "config", "no-config" };

    public static Option<string?> ConfigOption() => new("--config")
    {
        Description = $"A {FileName}-style file whose values beat the other {FileName} files and LOWRANK_* variables",
        Recursive = true,
    };

    public static Option<bool> NoConfigOption() => new("--no-config")
    {
        Description = $"Ignore {FileName} files and LOWRANK_* variables (only --config FILE and the command line count)",
        Recursive = true,
    };

    /// <summary>The layers that apply from <paramref name="currentDirectory"/>, lowest precedence first.</summary>
    public static List<ConfigurationLayer> LoadLayers(string currentDirectory, string? configFile, bool noConfig,
        IReadOnlyDictionary<string, string>? environment = null, string? userConfigFile = null)
    {
        var layers = new List<ConfigurationLayer>();
        if (!noConfig)
        {
            var user = userConfigFile ?? UserConfigFile();
            if (File.Exists(user)) layers.Add(ReadFile(user, "user"));
            foreach (var file in ProjectConfigFiles(currentDirectory)) layers.Add(ReadFile(file, "project"));
            var env = FromEnvironment(environment ?? CurrentEnvironment());
            if (env.Values.Count > 0) layers.Add(env);
        }
        if (configFile is not null)
        {
            var full = Path.GetFullPath(configFile, currentDirectory);
            if (!File.Exists(full)) throw new LrkException(ErrorCodes.BadArgument, $"--config {configFile}: no such file");
            layers.Add(ReadFile(full, "--config"));
        }
        return layers;
    }

    public static string UserConfigFile()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
        var baseDir = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
        return Path.Combine(baseDir, "lowrank", FileName);
    }

    /// <summary><c>lowrank.json</c> files from the repository/solution root down to <paramref name="currentDirectory"/>, outermost first.</summary>
    public static List<string> ProjectConfigFiles(string currentDirectory)
    {
        var found = new List<string>();
        for (var dir = new DirectoryInfo(Path.GetFullPath(currentDirectory)); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, FileName);
            if (File.Exists(candidate)) found.Add(candidate);
            if (IsProjectRoot(dir)) break;
        }
        found.Reverse();
        return found;
    }

    private static bool IsProjectRoot(DirectoryInfo dir)
    {
        try
        {
            return Directory.Exists(Path.Combine(dir.FullName, ".git")) || File.Exists(Path.Combine(dir.FullName, ".git"))
                || dir.EnumerateFiles("*.sln").Any() || dir.EnumerateFiles("*.slnx").Any();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static ConfigurationLayer ReadFile(string path, string kind)
    {
        IConfigurationRoot root;
        try
        {
            root = new ConfigurationBuilder().AddJsonFile(path, optional: false, reloadOnChange: false).Build();
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or System.Text.Json.JsonException or IOException or UnauthorizedAccessException)
        {
            var reason = (e.InnerException ?? e).Message;
            throw new LrkException(ErrorCodes.BadConfigValue, $"{path}: not a valid {FileName} ({reason})");
        }
        var values = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in root.AsEnumerable())
        {
            if (value is null) continue;
            values[key.ToLowerInvariant()] = value;
        }
        return new ConfigurationLayer($"{path} ({kind})", Path.GetDirectoryName(path), values);
    }

    private static Dictionary<string, string> CurrentEnvironment()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
            if (entry.Key is string name && entry.Value is string value) result[name] = value;
        return result;
    }

    /// <summary>The layer of <c>LOWRANK_*</c> variables (<see cref="ReservedVariables"/> excepted); keys keep the variable's name as their source.</summary>
    public static ConfigurationLayer FromEnvironment(IReadOnlyDictionary<string, string> environment)
    {
        var values = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var names = new List<string>();
        foreach (var (name, value) in environment.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (!name.StartsWith(EnvironmentPrefix, StringComparison.Ordinal) || ReservedVariables.Contains(name, StringComparer.Ordinal)) continue;
            var key = string.Join(':', name[EnvironmentPrefix.Length..].Split("__").Select(part => part.Replace('_', '-').ToLowerInvariant()));
            values[key] = value;
            names.Add(name);
        }
        return new ConfigurationLayer("environment", null, values);
    }

    /// <summary>The environment variable that sets <paramref name="key"/> (for messages).</summary>
    public static string VariableFor(string key) =>
        EnvironmentPrefix + string.Join("__", key.Split(':').Select(part => part.Replace('-', '_').ToUpperInvariant()));

    private static string Describe(ConfigurationLayer layer, string key) =>
        layer.Source == "environment" ? $"environment variable {VariableFor(key)}" : layer.Source;

    /// <summary>
    /// Checks every key of every layer against the command tree: a key is a command section path followed by one of
    /// that command's option names (list options may add an index: <c>eval:tasks:0</c>), or an option name any
    /// command has at the top level.
    /// </summary>
    public static void Validate(RootCommand root, IReadOnlyList<ConfigurationLayer> layers)
    {
        var topLevel = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, command) in Commands(root))
            foreach (var option in ConfigurableOptions(command)) topLevel.UnionWith(Keys(option));
        foreach (var layer in layers)
        {
            foreach (var key in layer.Values.Keys)
            {
                var segments = key.Split(':');
                Command command = root;
                var i = 0;
                while (i < segments.Length - 1 && command.Subcommands.FirstOrDefault(c => c.Name == segments[i]) is { } sub)
                {
                    command = sub;
                    i++;
                }
                var rest = segments[i..];
                var options = command == root ? null : ConfigurableOptions(command).ToList();
                var known = options is null ? topLevel.Contains(rest[0]) : options.Any(o => Keys(o).Contains(rest[0]));
                var indexOk = rest.Length == 1 || (rest.Length == 2 && int.TryParse(rest[1], out _) && AllowsMany(options, root, rest[0]));
                if (known && indexOk) continue;
                if (command != root && command.Subcommands.Count > 0 && i == segments.Length - 1 && !known)
                    throw Unknown(layer, key, $"'{rest[0]}' is not a subcommand or option of '{CommandPath(command)}'");
                if (command == root && i == 0 && segments.Length == 1 && Commands(root).Any(c => c.Path == key))
                    throw Unknown(layer, key, $"'{key}' is a command: put its options in a section ({{\"{key}\": {{\"option\": value}}}})");
                var choices = options is null
                    ? "commands: " + string.Join(", ", root.Subcommands.Select(c => c.Name)) + "; options: " + string.Join(", ", topLevel.Order(StringComparer.Ordinal))
                    : $"options of '{CommandPath(command)}': " + string.Join(", ", options.SelectMany(Keys).Order(StringComparer.Ordinal));
                throw Unknown(layer, key, $"not a known key ({choices})");
            }
        }
    }

    private static bool AllowsMany(List<Option>? options, RootCommand root, string name)
    {
        var candidates = options ?? Commands(root).SelectMany(c => ConfigurableOptions(c.Command)).ToList();
        return candidates.Where(o => Keys(o).Contains(name)).Any(o => o.Arity.MaximumNumberOfValues > 1);
    }

    private static LrkException Unknown(ConfigurationLayer layer, string key, string why) =>
        new(ErrorCodes.UnknownConfigKey, $"{Describe(layer, key)}: unknown key '{key}': {why}");

    /// <summary>
    /// The values the layers give for <paramref name="parse"/>'s command that its command line did not set: for each
    /// option, the highest layer that sets it (the command's section first, then the top level).
    /// </summary>
    public static List<ConfiguredValue> ValuesFor(ParseResult parse, IReadOnlyList<ConfigurationLayer> layers)
    {
        var command = parse.CommandResult.Command;
        var path = CommandPath(command).Replace(' ', ':');
        var result = new List<ConfiguredValue>();
        foreach (var option in ConfigurableOptions(command))
        {
            if (parse.GetResult(option) is { Implicit: false }) continue;
            foreach (var layer in Enumerable.Reverse(layers))
            {
                var values = Lookup(layer, path.Length == 0 ? null : path, option) ?? Lookup(layer, null, option);
                if (values is null) continue;
                result.AddRange(values);
                break;
            }
        }
        return result;
    }

    private static List<ConfiguredValue>? Lookup(ConfigurationLayer layer, string? section, Option option)
    {
        foreach (var name in Keys(option))
        {
            var key = section is null ? name : section + ":" + name;
            if (layer.Values.TryGetValue(key, out var single))
                return [new ConfiguredValue(key, Resolve(layer, single), Describe(layer, key), option.Name)];
            var list = layer.Values.Where(e => e.Key.StartsWith(key + ":", StringComparison.Ordinal))
                .OrderBy(e => int.TryParse(e.Key[(key.Length + 1)..], out var index) ? index : int.MaxValue)
                .Select(e => new ConfiguredValue(e.Key, Resolve(layer, e.Value), Describe(layer, e.Key), option.Name)).ToList();
            if (list.Count > 0) return list;
        }
        return null;
    }

    private static string Resolve(ConfigurationLayer layer, string value) =>
        layer.BaseFolder is not null && (value.StartsWith("./", StringComparison.Ordinal) || value.StartsWith("../", StringComparison.Ordinal))
            ? Path.GetFullPath(Path.Combine(layer.BaseFolder, value))
            : value;

    /// <summary>
    /// <paramref name="args"/> with the configured values added as options (before a <c>--</c> separator, if any),
    /// after checking each one parses: a value the option rejects is <see cref="ErrorCodes.BadConfigValue"/>.
    /// </summary>
    public static string[] Apply(RootCommand root, string[] args, IReadOnlyList<ConfiguredValue> values)
    {
        if (values.Count == 0) return args;
        var baseline = root.Parse(args).Errors.Select(e => e.Message).ToHashSet(StringComparer.Ordinal);
        foreach (var group in values.GroupBy(v => v.Option))
        {
            var trial = Insert(args, Tokens(group));
            if (root.Parse(trial).Errors.FirstOrDefault(e => !baseline.Contains(e.Message)) is { } error)
            {
                var value = group.First();
                throw new LrkException(ErrorCodes.BadConfigValue,
                    $"{value.Source}: {value.Key} = '{string.Join(", ", group.Select(v => v.Value))}' is not a valid value for {value.Option} ({error.Message})");
            }
        }
        return Insert(args, values.GroupBy(v => v.Option).SelectMany(Tokens).ToList());
    }

    private static List<string> Tokens(IGrouping<string, ConfiguredValue> group) => group.SelectMany(v => new[] { v.Option, v.Value }).ToList();

    private static string[] Insert(string[] args, IReadOnlyList<string> tokens)
    {
        var separator = Array.IndexOf(args, "--");
        return separator < 0 ? [.. args, .. tokens] : [.. args[..separator], .. tokens, .. args[separator..]];
    }

    /// <summary>A command's options including the recursive ones of its ancestors, without help/version/--config/--no-config.</summary>
    public static IEnumerable<Option> ConfigurableOptions(Command command)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var option in command.Options)
            if (seen.Add(option.Name) && Keys(option).All(k => !NotConfigurable.Contains(k))) yield return option;
        foreach (var ancestor in Ancestors(command))
            foreach (var option in ancestor.Options.Where(o => o.Recursive))
                if (seen.Add(option.Name) && Keys(option).All(k => !NotConfigurable.Contains(k))) yield return option;
    }

    private static IEnumerable<Command> Ancestors(Command command)
    {
        for (var parent = command.Parents.OfType<Command>().FirstOrDefault(); parent is not null; parent = parent.Parents.OfType<Command>().FirstOrDefault())
            yield return parent;
    }

    /// <summary>The configuration names of an option: its long names without dashes.</summary>
    public static IEnumerable<string> Keys(Option option) =>
        new[] { option.Name }.Concat(option.Aliases).Where(n => n.StartsWith("--", StringComparison.Ordinal)).Select(n => n[2..].ToLowerInvariant());

    /// <summary>Every command under <paramref name="root"/> with its path ("cache verify").</summary>
    public static IEnumerable<(string Path, Command Command)> Commands(Command root)
    {
        foreach (var sub in root.Subcommands)
        {
            yield return (sub.Name, sub);
            foreach (var (path, nested) in Commands(sub)) yield return (sub.Name + ":" + path, nested);
        }
    }

    private static string CommandPath(Command command) =>
        string.Join(' ', Ancestors(command).Reverse().Skip(1).Select(c => c.Name).Append(command.Name).Where(_ => command is not RootCommand));
}
