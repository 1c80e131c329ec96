using System.Xml;
using System.Xml.Linq;
using Microsoft.Build.Framework;

namespace LowRank.Build.Tasks;

/// <summary>A place in a project file, for errors that point at the item that caused them.</summary>
internal sealed record ItemLocation(string File, int Line, int Column)
{
    /// <summary>
    /// MSBuild gives items no line numbers, so find the element: the file that defined the item
    /// (<c>%(DefiningProjectFullPath)</c>), the <c>CompressedModel</c> element whose Include is the item's spec (as
    /// written, or as the same path), else the only or first such element. Line 0 when nothing matches.
    /// </summary>
    public static ItemLocation Find(ITaskItem item, string itemType, string fallbackProject, Dictionary<string, XDocument?> parsed)
    {
        var file = item.GetMetadata("DefiningProjectFullPath");
        if (string.IsNullOrEmpty(file)) file = fallbackProject;
        if (!parsed.TryGetValue(file, out var document))
        {
            try
            {
                document = XDocument.Load(file, LoadOptions.SetLineInfo);
            }
            catch (Exception e) when (e is IOException or XmlException or UnauthorizedAccessException)
            {
                document = null;
            }
            parsed[file] = document;
        }
        if (document?.Root is null) return new ItemLocation(file, 0, 0);

        var elements = document.Descendants().Where(e => e.Name.LocalName == itemType && e.Attribute("Include") is not null).ToList();
        var spec = item.GetMetadata("OriginalItemSpec") is { Length: > 0 } original ? original : item.ItemSpec;
        var directory = Path.GetDirectoryName(file) ?? "";
        var candidates = elements.Where(e => e.Attribute("Include")!.Value.Trim() == spec).ToList();
        if (candidates.Count == 0) candidates = elements.Where(e => SamePath(directory, e.Attribute("Include")!.Value.Trim(), spec)).ToList();
        if (candidates.Count == 0) candidates = elements.Take(1).ToList();
        // Several elements with the same Include: the one whose metadata (attributes or child elements) agrees most with the item's.
        var match = candidates.OrderByDescending(e => AgreeingMetadata(e, item)).FirstOrDefault();
        if (match is null) return new ItemLocation(file, 0, 0);
        var info = (IXmlLineInfo)match.Attribute("Include")!;
        return new ItemLocation(file, ((IXmlLineInfo)match).LineNumber, info.LinePosition);
    }

    private static int AgreeingMetadata(XElement element, ITaskItem item) =>
        element.Attributes().Where(a => a.Name.LocalName is not ("Include" or "Condition" or "Exclude"))
            .Select(a => (a.Name.LocalName, a.Value))
            .Concat(element.Elements().Select(e => (e.Name.LocalName, e.Value)))
            .Count(m => string.Equals(item.GetMetadata(m.Item1).Trim(), m.Item2.Trim(), StringComparison.Ordinal));

    private static bool SamePath(string directory, string a, string b)
    {
        try
        {
            return a.Length > 0 && b.Length > 0 && !a.Contains('$', StringComparison.Ordinal) &&
                string.Equals(Path.GetFullPath(Path.Combine(directory, a)).TrimEnd('/', '\\'), Path.GetFullPath(Path.Combine(directory, b)).TrimEnd('/', '\\'), StringComparison.Ordinal);
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    public static ItemLocation FromMetadata(ITaskItem item, string fallbackProject) => new(
        item.GetMetadata(MetadataNames.ItemFile) is { Length: > 0 } f ? f : fallbackProject,
        int.TryParse(item.GetMetadata(MetadataNames.ItemLine), out var line) ? line : 0,
        int.TryParse(item.GetMetadata(MetadataNames.ItemColumn), out var column) ? column : 0);
}
