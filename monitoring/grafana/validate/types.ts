// What a sealchat dashboard must be, in Grafana's own types (@grafana/schema).
//
// A dashboard is checked as a TypeScript object literal `satisfies SealchatDashboard`, so the
// compiler rejects a missing required field, a wrong type, a value outside an enum, and any
// property Grafana does not define (excess-property checks), at every level down to panel
// options. `Json<T>` turns Grafana's string enums into their string values, which is how
// they appear in dashboard JSON.
import type { Dashboard, DataQuery, Panel } from '@grafana/schema';
import type { Options as StatOptions } from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

export type Json<T> = T extends string
  ? `${T}`
  : T extends Array<infer U>
    ? Array<Json<U>>
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T;

// The Zabbix plugin's metrics query (grafana-zabbix src/datasource/types/query.ts,
// ZabbixMetricsQuery, queryType "0"), limited to the fields these dashboards use.
interface Filter {
  filter: string;
  name?: string;
}
interface MetricFunction {
  def: {
    name: string;
    category?: string;
    params: Array<{ name: string; type: string; optional?: boolean }>;
    defaultParams: Array<string | number>;
  };
  params: Array<string | number>;
  text: string;
  added?: boolean;
}
export interface ZabbixMetricsQuery extends DataQuery {
  queryType: '0';
  datasource: { type: 'alexanderzobnin-zabbix-datasource'; uid: string };
  group: Filter;
  host: Filter;
  application: Filter;
  itemTag: Filter;
  item: Filter;
  functions: MetricFunction[];
  options: {
    showDisabledItems?: boolean;
    skipEmptyValues?: boolean;
    disableDataAlignment?: boolean;
    useZabbixValueMapping?: boolean;
  };
}

type Typed<Kind extends string, Options, Custom> = Json<
  Omit<Panel<Options, Custom>, 'type' | 'options' | 'targets'>
> & { type: Kind; options: Json<Options>; targets: ZabbixMetricsQuery[] };

export type TimeSeriesPanel = Typed<'timeseries', TimeSeriesOptions, TimeSeriesFieldConfig>;
export type StatPanel = Typed<'stat', StatOptions, Record<string, never>>;

export type SealchatDashboard = Json<Omit<Dashboard, 'panels'>> & {
  uid: string;
  title: string;
  panels: Array<TimeSeriesPanel | StatPanel>;
};
