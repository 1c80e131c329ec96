namespace LowRank.Tests;

public class ToolEventTests
{
    [Fact]
    public void Round_trips_and_ignores_plain_text()
    {
        var line = new ToolEvent(ToolEvent.Progress, "calibrate", 3, 32, Message: "block 3").ToJsonLine();
        var parsed = ToolEvent.TryParse(line);
        Assert.NotNull(parsed);
        Assert.Equal(("progress", "calibrate", 3, 32, "block 3"), (parsed.Type, parsed.Stage, parsed.Block, parsed.Blocks, parsed.Message));
        Assert.Null(ToolEvent.TryParse("compressing block 3"));
        Assert.Null(ToolEvent.TryParse("{not json"));
        Assert.Null(ToolEvent.TryParse("""{"no":"type"}"""));
        var error = ToolEvent.TryParse("""{"type":"error","code":"LRK4001","message":"unknown method"}""");
        Assert.Equal(("error", "LRK4001"), (error!.Type, error.Code));
    }
}
