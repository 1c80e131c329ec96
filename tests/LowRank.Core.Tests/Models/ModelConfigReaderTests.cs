using LowRank.Models;

namespace LowRank.Tests.Models;

/// <summary>config.json parsing per family, from configs shaped like the published ones.</summary>
public sealed class ModelConfigReaderTests
{
    private const string Llama3 = """
        {
          "architectures": ["LlamaForCausalLM"], "model_type": "llama",
          "attention_bias": false, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
          "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072,
          "mlp_bias": false, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
          "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
          "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 8192, "rope_type": "llama3"},
          "vocab_size": 128256
        }
        """;

    [Fact]
    public void Llama3_with_gqa_and_llama3_rope_scaling()
    {
        var c = ModelConfigReader.Parse(Llama3);
        Assert.Equal(ModelFamily.Llama, c.Family);
        Assert.Equal("LlamaForCausalLM", c.Architecture);
        Assert.Equal((4096, 14336, 32, 32, 8, 128, 128256), (c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize));
        Assert.Equal(131072, c.MaxPositions);
        Assert.Equal(1e-5, c.NormEps);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal(new RopeScaling("llama3", 8.0, 1.0, 4.0, 8192), c.RopeScaling);
        Assert.Equal(128000, c.BosTokenId);
        Assert.Equal(128001, c.EosTokenId);
        Assert.Equal([128001, 128008, 128009], c.EosTokenIds);
        Assert.False(c.TieWordEmbeddings || c.AttentionBias || c.AttentionOutputBias || c.MlpBias);
        Assert.Null(c.SlidingWindow);
        Assert.Equal("bfloat16", c.TorchDtype);
        Assert.Equal(128256, (int)c.Raw!["vocab_size"]!);
    }

    [Fact]
    public void Llama_defaults_follow_transformers()
    {
        var c = ModelConfigReader.Parse("""
            {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
             "num_attention_heads": 8, "num_hidden_layers": 5, "vocab_size": 512,
             "attention_bias": true, "mlp_bias": true, "rope_scaling": {"type": "linear", "factor": 2.0}}
            """);
        Assert.Equal(8, c.NumKvHeads);
        Assert.Equal(8, c.HeadDim);
        Assert.Equal(2048, c.MaxPositions);
        Assert.Equal(1e-6, c.NormEps);
        Assert.Equal(10000.0, c.RopeTheta);
        Assert.Equal(new RopeScaling("linear", 2.0, null, null, null), c.RopeScaling);
        Assert.True(c.AttentionBias && c.AttentionOutputBias && c.MlpBias);
        Assert.Equal((1, 2), (c.BosTokenId, c.EosTokenId));
        Assert.Equal("silu", c.HiddenAct);
        Assert.Equal("float32", c.TorchDtype);
    }

    [Fact]
    public void Explicit_head_dim_need_not_divide_hidden_size()
    {
        // Mistral-Nemo: hidden 5120, 32 heads of 128
        var c = ModelConfigReader.Parse("""
            {"architectures": ["MistralForCausalLM"], "hidden_size": 5120, "head_dim": 128, "intermediate_size": 14336,
             "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 40, "vocab_size": 131072,
             "sliding_window": null, "rope_theta": 1000000.0}
            """);
        Assert.Equal(ModelFamily.Mistral, c.Family);
        Assert.Equal(128, c.HeadDim);
        Assert.Null(c.SlidingWindow);
        Assert.Null(c.SlidingWindowFor(10));
    }

    [Fact]
    public void Mistral_sliding_window_applies_to_every_layer()
    {
        var c = ModelConfigReader.Parse("""
            {"architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
             "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 32000,
             "max_position_embeddings": 32768, "sliding_window": 4096, "rms_norm_eps": 1e-05}
            """);
        Assert.Equal(4096, c.SlidingWindow);
        Assert.Equal(4096, c.SlidingWindowFor(0));
        Assert.Equal(4096, c.SlidingWindowFor(31));
        Assert.False(c.AttentionBias);
        var defaulted = ModelConfigReader.Parse("""
            {"architectures": ["MistralForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
             "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100}
            """);
        Assert.Equal(4096, defaulted.SlidingWindow); // MistralConfig's default when the key is absent
        Assert.Equal(131072, defaulted.MaxPositions);
    }

    [Fact]
    public void Qwen2_has_qkv_bias_without_output_bias_and_optional_window()
    {
        var c = ModelConfigReader.Parse("""
            {"architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu",
             "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
             "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
             "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "use_sliding_window": false,
             "vocab_size": 151936}
            """);
        Assert.Equal(ModelFamily.Qwen2, c.Family);
        Assert.True(c.AttentionBias);
        Assert.False(c.AttentionOutputBias);
        Assert.False(c.MlpBias);
        Assert.Equal((14, 2, 64), (c.NumHeads, c.NumKvHeads, c.HeadDim));
        Assert.True(c.TieWordEmbeddings);
        Assert.Null(c.SlidingWindow);

        var windowed = ModelConfigReader.Parse("""
            {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
             "num_hidden_layers": 4, "vocab_size": 100, "use_sliding_window": true, "sliding_window": 16, "max_window_layers": 2}
            """);
        Assert.Equal(16, windowed.SlidingWindow);
        Assert.Null(windowed.SlidingWindowFor(1));
        Assert.Equal(16, windowed.SlidingWindowFor(2));
        Assert.Null(windowed.BosTokenId);

        var typed = ModelConfigReader.Parse("""
            {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
             "num_hidden_layers": 3, "vocab_size": 100, "use_sliding_window": true, "sliding_window": 16, "max_window_layers": 0,
             "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}
            """);
        Assert.Equal([16, (int?)null, 16], Enumerable.Range(0, 3).Select(typed.SlidingWindowFor));
    }

    [Fact]
    public void Opt_125m_and_350m()
    {
        var c = ModelConfigReader.Parse("""
            {"activation_function": "relu", "architectures": ["OPTForCausalLM"], "bos_token_id": 2, "do_layer_norm_before": true,
             "dropout": 0.1, "enable_bias": true, "eos_token_id": 2, "ffn_dim": 3072, "hidden_size": 768,
             "layer_norm_elementwise_affine": true, "max_position_embeddings": 2048, "model_type": "opt",
             "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1, "torch_dtype": "float16",
             "vocab_size": 50272, "word_embed_proj_dim": 768}
            """);
        Assert.Equal(ModelFamily.Opt, c.Family);
        Assert.Equal((768, 3072, 12, 12, 12, 64, 50272, 2048), (c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize, c.MaxPositions));
        Assert.Equal("relu", c.HiddenAct);
        Assert.True(c.LayerNormBefore && c.AttentionBias && c.AttentionOutputBias && c.MlpBias && c.TieWordEmbeddings);
        Assert.Null(c.WordEmbedProjDim);
        Assert.Equal((2, 2, 1), (c.BosTokenId, c.EosTokenId, c.PadTokenId));

        var opt350 = ModelConfigReader.Parse("""
            {"architectures": ["OPTForCausalLM"], "do_layer_norm_before": false, "ffn_dim": 4096, "hidden_size": 1024,
             "num_attention_heads": 16, "num_hidden_layers": 24, "vocab_size": 50272, "word_embed_proj_dim": 512}
            """);
        Assert.False(opt350.LayerNormBefore);
        Assert.Equal(512, opt350.WordEmbedProjDim);
    }

    [Fact]
    public void Gpt2_maps_its_own_key_names()
    {
        var c = ModelConfigReader.Parse("""
            {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "bos_token_id": 50256, "eos_token_id": 50256,
             "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_inner": null,
             "n_layer": 12, "n_positions": 1024, "vocab_size": 50257}
            """);
        Assert.Equal(ModelFamily.Gpt2, c.Family);
        Assert.Equal((768, 3072, 12, 12, 64, 50257, 1024), (c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.HeadDim, c.VocabSize, c.MaxPositions));
        Assert.Equal("gelu_new", c.HiddenAct);
        Assert.True(c.TieWordEmbeddings && c.AttentionBias && c.MlpBias);
        Assert.Equal(50256, c.EosTokenId);

        var inner = ModelConfigReader.Parse("""{"architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_head": 4, "n_layer": 2, "n_inner": 100, "vocab_size": 99}""");
        Assert.Equal(100, inner.IntermediateSize);
    }

    [Fact]
    public void Transformers5_rope_parameters_and_dtype_are_read()
    {
        var c = ModelConfigReader.Parse("""
            {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
             "num_hidden_layers": 2, "vocab_size": 100, "dtype": "float32",
             "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}
            """);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Null(c.RopeScaling);
    }

    [Fact]
    public void Missing_architectures_falls_back_to_model_type()
    {
        var c = ModelConfigReader.Parse("""{"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 2, "vocab_size": 99}""");
        Assert.Equal("GPT2LMHeadModel", c.Architecture);
    }

    [Fact]
    public void Read_takes_a_folder_or_the_file()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("config.json"), Llama3);
        Assert.Equal(128256, ModelConfigReader.Read(temp.Path).VocabSize);
        Assert.Equal(128256, ModelConfigReader.Read(temp.File("config.json")).VocabSize);
    }
}
