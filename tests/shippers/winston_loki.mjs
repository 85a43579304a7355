// Sends log lines to rampart's Loki push endpoint with winston and winston-loki, as a Node
// service would: snappy-compressed protobuf over HTTPS, the source token as the Basic
// password. Prints "passed" once every line was acknowledged.
//
// Usage: node winston_loki.mjs URL CA_FILE TOKEN
import fs from "node:fs";
import https from "node:https";
import winston from "winston";
import LokiTransport from "winston-loki";

const [url, caFile, token] = process.argv.slice(2);
const errors = [];
const transport = new LokiTransport({
  host: url,
  basicAuth: `tenant:${token}`,
  json: false,
  batching: true,
  interval: 0.2,
  labels: { app: "checkout", env: "test" },
  httpsAgent: new https.Agent({ ca: fs.readFileSync(caFile) }),
  onConnectionError: (e) => errors.push(String(e)),
  timeout: 10000,
});
// winston-loki falls back to JSON without a word when snappy cannot load: this test is
// about the protobuf encoding, so it must not have.
const batcher = transport.batcher;
if (batcher.options.json !== false || batcher.contentType !== "application/x-protobuf") {
  console.error(`winston-loki is not sending protobuf (json=${batcher.options.json}, ${batcher.contentType})`);
  process.exit(1);
}
const logger = winston.createLogger({ transports: [transport] });
logger.error("card 4111 1111 1111 1111 declined for dora@example.com", { labels: { order: "A-17" } });
logger.info("cart viewed");
logger.warn("slow upstream");
await transport.flush();
await transport.close();
if (errors.length > 0) {
  console.error(`push failed: ${errors.join("; ")}`);
  process.exit(1);
}
console.log("passed");
process.exit(0);
