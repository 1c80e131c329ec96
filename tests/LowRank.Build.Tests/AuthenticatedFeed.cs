using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace LowRank.Build.Tests;

/// <summary>
/// A private NuGet v3 feed on loopback, as a company runs one: every request needs HTTP Basic credentials (401 with a
/// Basic challenge otherwise), and a push also needs the API key (403 otherwise). It serves what the remote cache
/// uses: the service index, the flat container (PackageBaseAddress/3.0.0: versions list and .nupkg) and the v2 push
/// endpoint (PackagePublish/2.0.0, a multipart PUT; 409 for a package it already has). Packages live in memory, and
/// every request is recorded so a test can tell that the push and the download really happened, with credentials.
/// </summary>
public sealed partial class AuthenticatedFeed : IDisposable
{
    private readonly HttpListener listener = new();
    private readonly ConcurrentDictionary<string, byte[]> packages = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentQueue<FeedRequest> requests = new();
    private readonly string expectedAuthorization;
    private readonly Task loop;

    public AuthenticatedFeed(string user, string password, string apiKey)
    {
        User = user;
        ApiKey = apiKey;
        expectedAuthorization = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
        var port = FreePort();
        BaseUrl = $"http://127.0.0.1:{port}/";
        listener.Prefixes.Add(BaseUrl);
        listener.Start();
        loop = Task.Run(Serve);
    }

    public string User { get; }
    public string ApiKey { get; }
    public string BaseUrl { get; }
    public string ServiceIndex => BaseUrl + "v3/index.json";

    /// <summary>Every request seen, in order.</summary>
    public IReadOnlyList<FeedRequest> Requests => requests.ToArray();

    /// <summary>Package file names (id.version.nupkg, lower case) the feed holds.</summary>
    public IReadOnlyCollection<string> Packages => packages.Keys.ToArray();

    public byte[]? Package(string id, string version) => packages.TryGetValue($"{id}.{version}.nupkg".ToLowerInvariant(), out var bytes) ? bytes : null;

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private async Task Serve()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            _ = Task.Run(() => Handle(context));
        }
    }

    private void Handle(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        var path = request.Url!.AbsolutePath;
        // Read the whole body first: answering a chunked upload before reading it would reset the connection.
        byte[] body;
        using (var copy = new MemoryStream())
        {
            request.InputStream.CopyTo(copy);
            body = copy.ToArray();
        }
        var authorized = string.Equals(request.Headers["Authorization"], expectedAuthorization, StringComparison.Ordinal);
        var status = 500;
        try
        {
            if (!authorized)
            {
                response.AddHeader("WWW-Authenticate", "Basic realm=\"lowrank-test-feed\"");
                status = 401;
            }
            else if (request.HttpMethod == "GET" && path == "/v3/index.json")
            {
                status = Json(response, $$"""
                    {"version":"3.0.0","resources":[
                      {"@id":"{{BaseUrl}}v3/flat/","@type":"PackageBaseAddress/3.0.0"},
                      {"@id":"{{BaseUrl}}api/v2/package","@type":"PackagePublish/2.0.0"}]}
                    """);
            }
            else if (request.HttpMethod == "GET" && FlatIndex().Match(path) is { Success: true } index)
            {
                var prefix = index.Groups[1].Value.ToLowerInvariant() + ".";
                var versions = packages.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && k.EndsWith(".nupkg", StringComparison.Ordinal))
                    .Select(k => k[prefix.Length..^".nupkg".Length]).ToList();
                status = versions.Count == 0 ? 404 : Json(response, "{\"versions\":[" + string.Join(",", versions.Select(v => $"\"{v}\"")) + "]}");
            }
            else if (request.HttpMethod == "GET" && FlatPackage().Match(path) is { Success: true } file && packages.TryGetValue(file.Groups[3].Value, out var bytes))
            {
                response.ContentType = "application/octet-stream";
                response.OutputStream.Write(bytes);
                status = 200;
            }
            else if (request.HttpMethod == "PUT" && path.StartsWith("/api/v2/package", StringComparison.Ordinal))
            {
                status = request.Headers["X-NuGet-ApiKey"] != ApiKey ? 403 : Store(Multipart.FilePart(request.ContentType ?? "", body));
            }
            else
            {
                status = 404;
            }
        }
        finally
        {
            requests.Enqueue(new FeedRequest(request.HttpMethod, path, authorized, request.Headers["X-NuGet-ApiKey"], status));
            response.StatusCode = status;
            response.Close();
        }
    }

    private int Store(byte[] nupkg)
    {
        using var zip = new ZipArchive(new MemoryStream(nupkg), ZipArchiveMode.Read);
        var nuspec = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.OrdinalIgnoreCase) && !e.FullName.Contains('/', StringComparison.Ordinal));
        XDocument document;
        using (var stream = nuspec.Open()) document = XDocument.Load(stream);
        var metadata = document.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        var id = metadata.Elements().Single(e => e.Name.LocalName == "id").Value;
        var version = metadata.Elements().Single(e => e.Name.LocalName == "version").Value;
        return packages.TryAdd($"{id}.{version}.nupkg".ToLowerInvariant(), nupkg) ? 201 : 409;
    }

    private static int Json(HttpListenerResponse response, string json)
    {
        response.ContentType = "application/json";
        response.OutputStream.Write(Encoding.UTF8.GetBytes(json));
        return 200;
    }

    [GeneratedRegex(@"^/v3/flat/([^/]+)/index\.json$")]
    private static partial Regex FlatIndex();

    [GeneratedRegex(@"^/v3/flat/([^/]+)/([^/]+)/([^/]+\.nupkg)$")]
    private static partial Regex FlatPackage();

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        try { loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}

public sealed record FeedRequest(string Method, string Path, bool Authorized, string? ApiKey, int Status);

/// <summary>The one file part of a multipart/form-data body (what NuGet's push sends).</summary>
internal static class Multipart
{
    public static byte[] FilePart(string contentType, byte[] body)
    {
        var boundary = contentType.Split(';').Select(p => p.Trim()).First(p => p.StartsWith("boundary=", StringComparison.OrdinalIgnoreCase))["boundary=".Length..].Trim('"');
        var delimiter = Encoding.ASCII.GetBytes("--" + boundary);
        var start = IndexOf(body, delimiter, 0);
        var headersEnd = IndexOf(body, "\r\n\r\n"u8.ToArray(), start) + 4;
        var end = IndexOf(body, Encoding.ASCII.GetBytes("\r\n--" + boundary), headersEnd);
        if (start < 0 || headersEnd < 4 || end < 0) throw new InvalidDataException("not a multipart body");
        return body[headersEnd..end];
    }

    private static int IndexOf(byte[] haystack, byte[] needle, int from)
    {
        for (var i = Math.Max(from, 0); i <= haystack.Length - needle.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }
}
