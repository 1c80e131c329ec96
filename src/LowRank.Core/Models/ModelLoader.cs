using LowRank.Models.Architectures;
using LowRank.Models.Tokenizers;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>How <see cref="ModelLoader.Load"/> places and computes a model.</summary>
public sealed record ModelLoadOptions
{
    public DeviceRequest Device { get; init; } = DeviceRequest.Auto;

    /// <summary>A libtorch folder to load (as <c>--libtorch</c>); null = the usual discovery.</summary>
    public string? LibTorch { get; init; }

    /// <summary>Weights and activations dtype (fp32 by default; fp16/bf16 halve the memory); logits are fp32.</summary>
    public ScalarType ComputeDtype { get; init; } = ScalarType.Float32;

    /// <summary>Keep block weights on the host and move each block to the device only while it runs.</summary>
    public bool StreamBlocks { get; init; }

    /// <summary>Read block weights only when their block runs (<see cref="DecoderModelOptions.LazyBlockWeights"/>).</summary>
    public bool LazyBlockWeights { get; init; }

    /// <summary>Load the tokenizer too (a folder without one gives a null <see cref="LoadedModel.Tokenizer"/>).</summary>
    public bool LoadTokenizer { get; init; } = true;
}

/// <summary>A model ready to run: the forward pass, its tokenizer (when the folder has one), where it came from.</summary>
public sealed record LoadedModel(IDecoderModel Model, ITokenizer? Tokenizer, string Folder, ModelConfig Config) : IDisposable
{
    public void Dispose() => Model.Dispose();
}

/// <summary>Loads a model folder (or a Hugging Face cache id): config.json, safetensors weights, tokenizer.</summary>
public static class ModelLoader
{
    public static LoadedModel Load(string pathOrId, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        var folder = ModelLocator.Resolve(pathOrId);
        var config = ModelConfigReader.Read(folder);
        var device = TorchBackend.Device(options.Device, options.LibTorch);
        var tokenizer = options.LoadTokenizer ? TokenizerLoader.Load(folder, config) : null;
        if (tokenizer is not null && tokenizer.VocabSize > config.VocabSize)
            throw new LrkException(ErrorCodes.BadTokenizer, $"{folder}: the tokenizer has {tokenizer.VocabSize} tokens but the model only {config.VocabSize} (vocab_size)");
        var lazy = options.LazyBlockWeights;
        var store = TensorStore.Open(folder);
        try
        {
            // A lazy model reads from the checkpoint for as long as it lives, so it owns the open store.
            var weights = new WeightSource(store.Names, name => store.Load(name), name => store.Info(name).Shape, lazy ? store : null);
            var model = Create(config, weights, new DecoderModelOptions
            {
                Device = device,
                ComputeDtype = options.ComputeDtype,
                StreamBlocks = options.StreamBlocks,
                LazyBlockWeights = lazy,
            });
            if (!lazy) store.Dispose();
            return new LoadedModel(model, tokenizer, folder, config);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>The forward pass for <paramref name="config"/>'s family.</summary>
    public static DecoderModel Create(ModelConfig config, WeightSource weights, DecoderModelOptions? options = null) => config.Family switch
    {
        ModelFamily.Llama or ModelFamily.Mistral or ModelFamily.Qwen2 => new LlamaModel(config, weights, options),
        ModelFamily.Opt => new OptModel(config, weights, options),
        ModelFamily.Gpt2 => new Gpt2Model(config, weights, options),
        _ => throw new LrkException(ErrorCodes.UnsupportedArchitecture, $"no forward pass for the {config.Family} family"),
    };
}
