import { z } from 'zod';
import { configSchema } from './schema.ts';

interface JsonSchemaNode {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  required?: string[];
}

/**
 * The configuration reference in Markdown, generated from the schema itself so that
 * the documented keys, types and defaults are the ones the loader enforces.
 */
export function configReferenceMarkdown(): string {
  const root = z.toJSONSchema(configSchema('.'), { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode;
  const rows: string[] = [];
  walk(root, '', false, rows);
  return [
    '# Configuration reference (vigil.yaml)',
    '',
    'Generated from the schema by `npm run docs:config`; a test fails when it is out of date.',
    'Unknown keys are errors. Durations are written `30s`, `15m`, `4h`, `7d`. Paths are relative',
    'to the config file. Keys ending in `_file` that hold secrets must not be readable by group or others.',
    '',
    '| key | type | default | required | description |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

function walk(node: JsonSchemaNode, path: string, required: boolean, rows: string[]): void {
  const object = node.properties ? node : node.anyOf?.find((option) => option.properties);
  if (path !== '') {
    rows.push(
      `| \`${path}\` | ${typeOf(node)} | ${node.default === undefined ? '' : `\`${JSON.stringify(node.default)}\``} | ${required ? 'yes' : ''} | ${(node.description ?? '').replaceAll('|', '\\|')} |`,
    );
  }
  if (object?.properties) {
    for (const [key, child] of Object.entries(object.properties)) {
      walk(child, path === '' ? key : `${path}.${key}`, object.required?.includes(key) ?? false, rows);
    }
  }
  const items = node.items ?? node.anyOf?.find((option) => option.items)?.items;
  if (items?.properties) {
    for (const [key, child] of Object.entries(items.properties)) {
      walk(child, `${path}[].${key}`, items.required?.includes(key) ?? false, rows);
    }
  }
}

function typeOf(node: JsonSchemaNode): string {
  if (node.enum) return node.enum.map((value) => `\`${String(value)}\``).join(' \\| ');
  if (node.anyOf) return [...new Set(node.anyOf.map(typeOf))].join(' or ');
  if (node.type === 'array') return `list of ${node.items ? typeOf(node.items) : 'values'}`;
  if (Array.isArray(node.type)) return node.type.join(' or ');
  return node.type ?? 'any';
}
