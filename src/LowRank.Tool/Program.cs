using System.Globalization;
using LowRank.Tool;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.DefaultThreadCurrentUICulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

return await CommandRunner.InvokeAsync(ToolCommands.CreateRoot(), args);
