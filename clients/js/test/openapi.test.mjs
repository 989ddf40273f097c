// docs/openapi.yaml is a valid OpenAPI 3.1 document, checked with a real
// validator (@seriousme/openapi-schema-validator: the OpenAPI Initiative's
// 3.1 JSON Schema) and with every $ref resolved. (server/openapi_test.go
// checks that it documents exactly the routes the server serves.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';

const path = new URL('../../../docs/openapi.yaml', import.meta.url);
const yaml = readFileSync(path, 'utf8');

test('docs/openapi.yaml validates as OpenAPI 3.1 and every $ref resolves', async () => {
  assert.match(yaml, /^openapi: 3\.1\.\d+$/m);
  const v = new Validator();
  const res = await v.validate(yaml);
  assert.equal(v.version, '3.1');
  assert.ok(res.valid, `invalid OpenAPI 3.1: ${JSON.stringify(res.errors, null, 2)}`);
  const spec = v.resolveRefs(); // throws on a $ref that points nowhere
  assert.ok(Object.keys(spec.paths).length > 10, 'paths resolved');
});

test('the validator is strict: a 3.2-only field and a dangling $ref are refused', async () => {
  const bad = yaml.replace('              x-sse-data:\n', '              itemSchema:\n');
  assert.notEqual(bad, yaml, 'the SSE response moved: update this test');
  const v = new Validator();
  const res = await v.validate(bad);
  assert.equal(res.valid, false, 'itemSchema (OpenAPI 3.2) accepted in a 3.1 document');
  const dangling = yaml.replace('"#/components/schemas/ChangeEvent"', '"#/components/schemas/NoSuchEvent"');
  const v2 = new Validator();
  await v2.validate(dangling);
  assert.throws(() => v2.resolveRefs(), /NoSuchEvent|resolve/i);
});
