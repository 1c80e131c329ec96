using System.Text.Json.Nodes;
using LowRank.Models;
using LowRank.Onnx.Graphs;

namespace LowRank.Onnx;

/// <summary>
/// <c>genai_config.json</c>: what ONNX Runtime GenAI needs to load an exported folder and generate — the decoder's
/// file, its input/output names (<see cref="DecoderGraph"/>), the KV-cache shape, special tokens, and greedy search
/// settings up to the model's context. Written for the families GenAI runs with this graph interface (its model
/// types llama, mistral, qwen2); past and present buffers are not shared (the graph concatenates the cache).
/// </summary>
public static class GenAiConfig
{
    public const string FileName = "genai_config.json";

    /// <summary>GenAI's model type for a family, or null where GenAI has none for this graph.</summary>
    public static string? ModelType(ModelFamily family) => family switch
    {
        ModelFamily.Llama => "llama",
        ModelFamily.Mistral => "mistral",
        ModelFamily.Qwen2 => "qwen2",
        _ => null,
    };

    public static JsonObject Create(DecoderGraph graph, string modelFileName)
    {
        var config = graph.Config;
        var type = ModelType(config.Family) ?? throw new ArgumentException($"ONNX Runtime GenAI has no model type for the {config.Family} family", nameof(graph));
        var eos = config.EosTokenIds.Count > 1 ? new JsonArray(config.EosTokenIds.Select(id => (JsonNode)id).ToArray()) : (JsonNode?)(config.EosTokenId ?? 0);
        return new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["bos_token_id"] = config.BosTokenId ?? 0,
                ["context_length"] = config.MaxPositions,
                ["decoder"] = new JsonObject
                {
                    ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                    ["filename"] = modelFileName,
                    ["head_size"] = graph.HeadDim,
                    ["hidden_size"] = config.HiddenSize,
                    ["inputs"] = new JsonObject
                    {
                        ["input_ids"] = DecoderGraph.InputIds,
                        ["attention_mask"] = DecoderGraph.AttentionMask,
                        ["position_ids"] = DecoderGraph.PositionIds,
                        ["past_key_names"] = DecoderGraph.PastKeyFormat,
                        ["past_value_names"] = DecoderGraph.PastValueFormat,
                    },
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = DecoderGraph.Logits,
                        ["present_key_names"] = DecoderGraph.PresentKeyFormat,
                        ["present_value_names"] = DecoderGraph.PresentValueFormat,
                    },
                    ["num_attention_heads"] = config.NumHeads,
                    ["num_hidden_layers"] = config.NumLayers,
                    ["num_key_value_heads"] = graph.KvHeads,
                },
                ["eos_token_id"] = eos,
                ["pad_token_id"] = config.PadTokenId ?? config.EosTokenId ?? 0,
                ["type"] = type,
                ["vocab_size"] = config.VocabSize,
            },
            ["search"] = new JsonObject
            {
                ["diversity_penalty"] = 0.0,
                ["do_sample"] = false,
                ["early_stopping"] = true,
                ["length_penalty"] = 1.0,
                ["max_length"] = config.MaxPositions,
                ["min_length"] = 0,
                ["no_repeat_ngram_size"] = 0,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,
                ["past_present_share_buffer"] = false,
                ["repetition_penalty"] = 1.0,
                ["temperature"] = 1.0,
                ["top_k"] = 1,
                ["top_p"] = 1.0,
            },
        };
    }
}
