using LowRank.Torch;
using Xunit.Abstractions;

namespace LowRank.Bench.Tests;

/// <summary>
/// Our forward pass against HF transformers' logits, through the harness behind <c>dotnet lowrank bench parity</c>
/// (<see cref="HfParity"/>, which runs it on CUDA): every fixture of tests/fixtures/parity, tolerance 1e-4 max abs.
/// </summary>
public sealed class HfParityTests
{
    private const double Tolerance = 1e-4;
    private readonly ITestOutputHelper output;

    public HfParityTests(ITestOutputHelper output)
    {
        this.output = output;
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [Fact]
    public void Every_supported_family_has_a_fixture()
    {
        Assert.Superset(new HashSet<string> { "llama", "llama3", "mistral", "qwen2", "opt", "gpt2" }, ParityFixtures.Names().ToHashSet());
    }

    [Theory]
    [MemberData(nameof(ParityFixtures.All), MemberType = typeof(ParityFixtures))]
    public void Logits_match_transformers(string name)
    {
        var result = HfParity.Check(ParityFixtures.Folder(name), DeviceRequest.Cpu);
        output.WriteLine($"{name}: max |ours - transformers| = {result.MaxAbsDiff:E3}");
        Assert.True(result.MaxAbsDiff < Tolerance, $"{name}: max |ours - transformers| = {result.MaxAbsDiff:E3} (tolerance {Tolerance:E0})");
    }
}
